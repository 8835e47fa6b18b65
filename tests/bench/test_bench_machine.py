"""Machine facts: parsers of /proc, nvidia-smi, nvpmodel and tegrastats output (captured strings), thread choice,
peak-memory helpers, and the bandwidth probe."""

from __future__ import annotations

import pytest

from uniecg_edge.bench.bandwidth import copy_bandwidth, measure_bandwidth
from uniecg_edge.bench.machine import (
    choose_threads,
    collect_machine,
    parse_cpu_model,
    parse_loadavg,
    parse_nvidia_smi_gpus,
    parse_nvpmodel,
    parse_tegrastats,
)
from uniecg_edge.bench.memory import PeakMemory, parse_compute_apps, parse_status_kb

# tegrastats lines as published: AGX Orin 64GB on L4T 36.4.4 (two GPCs), Xavier NX on JetPack 5.1.2,
# Orin Nano, and a JetPack 4 TX2-era line without clocks on the engines (rails without mW units).
AGX_ORIN = ("05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) "
            "CPU [14%@2188,5%@2112,8%@2035,14%@2201,46%@1267,47%@1267,2%@1267,10%@1267,4%@1036,5%@1036,6%@1036,"
            "10%@1036] EMC_FREQ 3%@2133 GR3D_FREQ 0%@[0,0] NVENC 79%@166 NVDEC off NVJPG off NVJPG1 off VIC 36%@115 "
            "OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@52.562C soc2@48.437C soc0@49.093C tj@52.562C "
            "soc1@49.656C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW VIN_SYS_5V0 4707mW/4707mW")
XAVIER_NX = ("07-09-2024 13:31:31 RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) "
             "CPU [23%@1397,17%@1192,16%@1190,13%@1190,23%@1190,10%@1190] EMC_FREQ 2%@204 GR3D_FREQ 0%@[114] "
             "VIC_FREQ 115 APE 150 AUX@45C CPU@46.5C thermal@45.6C AO@45C GPU@45.5C PMIC@50C "
             "VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW VDD_SOC 650mW/711mW")
ORIN_NANO = ("RAM 3162/7620MB (lfb 8x4MB) SWAP 0/3810MB (cached 0MB) CPU [1%@1510,0%@1510,off,off,2%@729,0%@729] "
             "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] VIC off APE 200 cpu@50.031C CV0@-256C tj@50.031C "
             "VDD_IN 4952mW/4952mW VDD_CPU_GPU_CV 1013mW/1013mW VDD_SOC 1544mW/1544mW")
TX2_OLD = ("RAM 2020/7852MB (lfb 1164x4MB) CPU [9%@345,21%@345,25%@345,3%@345,1%@345,1%@345] EMC_FREQ 0% "
           "GR3D_FREQ 0% PLL@42.5C MCPU@42.5C PMIC@100C Tboard@40C GPU@41C BCPU@42.5C thermal@41.9C "
           "Tdiode@41.25C VDD_SYS_GPU 153/158 VDD_SYS_SOC 536/547 VDD_4V0_WIFI 633/527 VDD_IN 3140/3208 "
           "VDD_SYS_CPU 536/590 VDD_SYS_DDR 557/601")


def test_tegrastats_agx_orin_line() -> None:
    t = parse_tegrastats(AGX_ORIN)
    assert t is not None
    assert (t["ram_used_mb"], t["ram_total_mb"], t["swap_used_mb"]) == (18207, 62841, 86)
    assert len(t["cpu_cores"]) == 12 and t["cpu_cores"][0] == {"load_pct": 14, "mhz": 2188}
    assert (t["emc_load_pct"], t["emc_mhz"]) == (3, 2133)
    assert t["gpu_load_pct"] == 0 and t["gpu_mhz"] == [0, 0]  # two GPCs
    assert t["temperatures_c"]["tj"] == pytest.approx(52.562)
    assert t["power_rails"]["VIN_SYS_5V0"] == {"now_mw": 4707, "avg_mw": 4707}


def test_tegrastats_xavier_nano_and_old_lines() -> None:
    nx = parse_tegrastats(XAVIER_NX)
    assert nx is not None and nx["gpu_mhz"] == 114 and nx["emc_mhz"] == 204
    assert nx["power_rails"]["VDD_IN"] == {"now_mw": 2763, "avg_mw": 2846}
    nano = parse_tegrastats(ORIN_NANO)
    assert nano is not None and nano["cpu_cores"][2] is None and nano["cpu_cores"][4] == {"load_pct": 2, "mhz": 729}
    assert "CV0" not in nano["temperatures_c"]  # -256C: no sensor
    old = parse_tegrastats(TX2_OLD)
    assert old is not None and old["gpu_load_pct"] == 0 and "gpu_mhz" not in old
    assert old["power_rails"]["VDD_IN"] == {"now_mw": 3140, "avg_mw": 3208}
    assert parse_tegrastats("not a tegrastats line") is None


def test_nvpmodel_query_outputs() -> None:
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"power_mode": "MAXN", "mode_id": 0}
    assert parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: 15W\n2\n") == {"power_mode": "15W", "mode_id": 2}
    assert parse_nvpmodel("NVPM WARN: patching\nNV Power Mode: MAXN_SUPER\n2") == {"power_mode": "MAXN_SUPER",
                                                                                 "mode_id": 2}
    assert parse_nvpmodel("NV Power Mode: 5W") == {"power_mode": "5W", "mode_id": None}
    assert parse_nvpmodel("nvpmodel: command failed") is None


def test_cpuinfo_smi_loadavg_and_status_parsers() -> None:
    assert parse_cpu_model("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n") == \
        "AMD EPYC"
    arm = "processor\t: 0\nBogoMIPS\t: 62.50\nCPU part\t: 0xd42\n\nModel\t: NVIDIA Jetson AGX Orin\n"
    assert parse_cpu_model(arm) == "NVIDIA Jetson AGX Orin"
    assert parse_nvidia_smi_gpus("NVIDIA H100 80GB HBM3, 570.86.15, 81559, 9.0\n") == [
        {"name": "NVIDIA H100 80GB HBM3", "driver": "570.86.15", "memory_mib": 81559, "compute_capability": "9.0"}]
    assert parse_nvidia_smi_gpus("Orin (nvgpu), 540.4.0, [N/A], 8.7")[0]["memory_mib"] is None
    assert parse_loadavg("1.31 1.58 1.88 2/95 2321\n") == {"1min": 1.31, "5min": 1.58, "15min": 1.88}
    assert parse_loadavg("") is None
    assert parse_status_kb("Name:\tpython\nVmHWM:\t  806248 kB\nVmRSS:\t 25124 kB\n", "VmHWM") == 806248
    assert parse_compute_apps("123, 500\n456, 700\n123, 20\n", 123) == 520
    assert parse_compute_apps("", 123) is None


def test_thread_choice_follows_omp_and_the_free_cores() -> None:
    assert choose_threads({"OMP_NUM_THREADS": "3"}, {"1min": 0.0}, 8)[0] == 3
    assert choose_threads({}, {"1min": 0.2}, 8)[0] == 8
    assert choose_threads({}, {"1min": 3.4}, 8)[0] == 5
    assert choose_threads({}, {"1min": 9.0}, 2) == (1, "2 usable cores, 1-minute load 9.00: 1 free")


def test_thread_choice_prefers_the_cores_busy_now_over_the_lagging_load_average() -> None:
    from uniecg_edge.bench.machine import busy_cores, parse_proc_stat

    # /proc/stat as Linux writes it: cpu user nice system idle iowait irq softirq steal guest guest_nice
    before = parse_proc_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1 2\n")
    after = parse_proc_stat("cpu  200 0 100 850 50 0 0 0 0 0\ncpu0 100 0 50 425 25 0 0 0 0 0\n")
    assert before == (150, 1000) and after == (300, 1200)
    assert busy_cores(before, after, 2) == 1.5  # 150 of 200 jiffies busy on 2 cores
    assert parse_proc_stat("intr 1 2\n") is None
    # a job that ended a minute ago still shows in the load average, not in the busy sample
    assert choose_threads({}, {"1min": 0.9}, 2, busy=0.05) == (2, "2 usable cores, 0.05 busy now: 2 free")
    assert choose_threads({}, None, 2, busy=1.6)[0] == 1
    assert choose_threads({"OMP_NUM_THREADS": "1"}, None, 2, busy=0.0)[0] == 1


def test_collect_machine_names_cpu_versions_and_load() -> None:
    machine = collect_machine(threads=1)
    assert machine["cpu"]["logical_cores"] >= 1 and machine["cpu"]["model"]
    assert machine["versions"]["python"] and "onnxruntime" in machine["versions"]
    assert machine["threads"] == 1 and isinstance(machine["gpus"], list)


def test_peak_memory_resets_to_the_window_peak() -> None:
    import numpy as np

    peak = PeakMemory()
    big = np.ones(40_000_000 // 8)  # 40 MB touched
    del big
    before = peak.read()["peak_rss_mb"]
    peak.reset()
    after = peak.read()
    if after["peak_rss_scope"] == "since reset":  # Linux with clear_refs
        assert after["peak_rss_mb"] < before


def test_streaming_copy_probe() -> None:
    probe = copy_bandwidth(array_bytes=8 * 2**20, repeats=2, threads=2)
    assert probe.gb_per_s >= probe.median_gb_per_s > 0 and probe.threads == 2
    facts = measure_bandwidth(threads=2, array_bytes=4 * 2**20, repeats=1)
    assert facts["source"] == "measured" and len(facts["probes"]) == 2
    assert facts["gb_per_s"] == max(p["gb_per_s"] for p in facts["probes"])
    with pytest.raises(ValueError):
        copy_bandwidth(array_bytes=1024)
