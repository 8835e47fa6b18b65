"""What machine a benchmark ran on: CPU, memory, load, GPU and driver, library versions, Jetson power mode.

Every probe is optional and never raises: a missing tool gives ``None``. The parsers (``/proc/cpuinfo``,
``nvidia-smi``, ``nvpmodel -q``, one ``tegrastats`` line, ``/proc/loadavg``) are pure functions tested on captured
strings. On a Jetson the power mode comes from ``nvpmodel -q`` and the clocks and rails from one ``tegrastats``
line (no root needed for either on JetPack 5 and 6).
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JETSON_MODEL_FILE = Path("/proc/device-tree/model")
TOOL_TIMEOUT_S = 10.0


# ---- parsers -------------------------------------------------------------------------------------------------------
def parse_cpu_model(cpuinfo: str) -> str | None:
    """The CPU model from ``/proc/cpuinfo``: ``model name`` (x86), else ``Model`` or ``Hardware`` (Arm boards)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu part"):
        if key in fields:
            return fields[key]
    return None


def parse_loadavg(text: str) -> dict[str, float] | None:
    """``/proc/loadavg`` -> ``{"1min", "5min", "15min"}`` (runnable processes averaged over each span)."""
    parts = text.split()
    try:
        return {"1min": float(parts[0]), "5min": float(parts[1]), "15min": float(parts[2])}
    except (IndexError, ValueError):
        return None


def parse_nvidia_smi_gpus(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 4 or not cells[0]:
            continue
        name, (driver, memory, cap) = ", ".join(cells[:-3]), cells[-3:]  # a name may hold commas
        try:
            memory_mib: int | None = int(float(memory))
        except ValueError:
            memory_mib = None
        gpus.append({"name": name, "driver": driver, "memory_mib": memory_mib, "compute_capability": cap})
    return gpus


def parse_nvpmodel(text: str) -> dict[str, Any] | None:
    """``nvpmodel -q`` -> ``{"power_mode": "MAXN", "mode_id": 0}``.

    The tool prints ``NV Power Mode: <name>`` and the mode's number on the next line (JetPack 4-6); other lines
    (``NV Fan Mode:quiet``, ``NVPM WARN ...``) are ignored.
    """
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        match = re.match(r"NV\s*Power\s*Mode\s*:\s*(.+)$", line, flags=re.IGNORECASE)
        if match is None:
            continue
        mode_id = None
        for following in lines[i + 1:]:
            if re.fullmatch(r"\d+", following):
                mode_id = int(following)
                break
            if following:
                break
        return {"power_mode": match.group(1).strip(), "mode_id": mode_id}
    return None


_RAM = re.compile(r"\bRAM\s+(\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP\s+(\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU\s+\[([^\]]*)\]")
_ENGINE = re.compile(r"\b(EMC_FREQ|GR3D_FREQ|GR3D2_FREQ)\s+(\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMPERATURE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
NO_SENSOR_C = -256.0  # tegrastats prints -256C for a thermal zone without a sensor


def parse_tegrastats(line: str) -> dict[str, Any] | None:
    """One ``tegrastats`` line -> RAM, CPU load and clock per core, memory (EMC) and GPU (GR3D) load and clock,
    temperatures and power rails (mW, current/average). Fields a module lacks are absent; ``None`` when the line
    holds no RAM field (not a tegrastats line)."""
    ram = _RAM.search(line)
    if ram is None:
        return None
    out: dict[str, Any] = {"ram_used_mb": int(ram.group(1)), "ram_total_mb": int(ram.group(2))}
    swap = _SWAP.search(line)
    if swap:
        out["swap_used_mb"], out["swap_total_mb"] = int(swap.group(1)), int(swap.group(2))
    cpu = _CPU.search(line)
    if cpu:
        cores: list[dict[str, int] | None] = []
        for cell in cpu.group(1).split(","):
            core = re.fullmatch(r"\s*(\d+)%(?:@(\d+))?\s*", cell)
            cores.append(None if core is None else
                         {"load_pct": int(core.group(1)), **({"mhz": int(core.group(2))} if core.group(2) else {})})
        out["cpu_cores"] = cores  # None = core off
    for name, load, clocks in _ENGINE.findall(line):
        key = {"EMC_FREQ": "emc", "GR3D_FREQ": "gpu", "GR3D2_FREQ": "gpu2"}[name]
        out[f"{key}_load_pct"] = int(load)
        if clocks:
            mhz = [int(c) for c in clocks.split(",") if c]
            out[f"{key}_mhz"] = mhz[0] if len(mhz) == 1 else mhz
    temps = {name: float(value) for name, value in _TEMPERATURE.findall(line) if float(value) != NO_SENSOR_C}
    if temps:
        out["temperatures_c"] = temps
    rails = {name: {"now_mw": int(now), "avg_mw": int(avg)} for name, now, avg in _RAIL.findall(line)
             if name not in ("RAM", "SWAP")}
    if rails:
        out["power_rails"] = rails
    return out


# ---- probes --------------------------------------------------------------------------------------------------------
def _run(argv: list[str]) -> str | None:
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("%s failed: %s", argv[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def tegrastats_line(interval_ms: int = 200) -> str | None:
    """One line of ``tegrastats`` (it runs until stopped: the first line is read and the tool is ended)."""
    exe = shutil.which("tegrastats")
    if exe is None:
        return None
    try:
        proc = subprocess.Popen([exe, "--interval", str(interval_ms)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    except OSError as exc:
        log.info("tegrastats failed: %s", exc)
        return None
    try:
        assert proc.stdout is not None
        return proc.stdout.readline().strip() or None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=TOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()


def load_average() -> dict[str, float] | None:
    text = _read(Path("/proc/loadavg"))
    return parse_loadavg(text) if text else None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


BUSY_SAMPLE_S = 0.5  # how long choose_threads watches the CPUs when it can read /proc/stat


def parse_proc_stat(text: str) -> tuple[int, int] | None:
    """(busy, total) jiffies of the aggregate ``cpu`` line of ``/proc/stat`` (idle and iowait are not busy)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu" and len(fields) >= 5:
            values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            return sum(values) - idle, sum(values)
    return None


def busy_cores(before: tuple[int, int], after: tuple[int, int], cores: int) -> float:
    """Cores kept busy between two ``parse_proc_stat`` samples (whole machine, this process included)."""
    total = after[1] - before[1]
    return 0.0 if total <= 0 else cores * (after[0] - before[0]) / total


def sample_busy_cores(seconds: float = BUSY_SAMPLE_S) -> float | None:
    """Cores busy right now, watched for ``seconds`` through ``/proc/stat``; ``None`` where it cannot be read."""
    try:
        before = parse_proc_stat(Path("/proc/stat").read_text())
        time.sleep(seconds)
        after = parse_proc_stat(Path("/proc/stat").read_text())
    except OSError:
        return None
    if before is None or after is None:
        return None
    return busy_cores(before, after, os.cpu_count() or 1)


def choose_threads(environ: dict[str, str] | None = None, load: dict[str, float] | None = None,
                   cores: int | None = None, busy: float | None = None) -> tuple[int, str]:
    """Threads for torch and onnxruntime, and why: ``OMP_NUM_THREADS`` when set, else the usable cores that other
    processes leave free: the cores busy right now (a short ``/proc/stat`` sample) where that can be read, else
    the 1-minute load average (which still counts a job that ended a minute ago); rounded, at least 1. Threads
    that must share a core with another busy process stall each other's barriers: on a loaded 2-core machine
    2 torch threads ran a decode step 10x slower than 1."""
    env = os.environ if environ is None else environ
    value = env.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value), "OMP_NUM_THREADS"
    cores = usable_cores() if cores is None else cores
    if busy is None and load is None:
        busy = sample_busy_cores()
    if busy is not None:
        free = max(1, min(cores, cores - int(round(busy))))
        return free, f"{cores} usable cores, {busy:.2f} busy now: {free} free"
    load = load_average() if load is None else load
    if not load:
        return cores, f"all {cores} usable cores (load unknown)"
    free = max(1, min(cores, cores - int(round(load["1min"]))))
    return free, f"{cores} usable cores, 1-minute load {load['1min']:.2f}: {free} free"


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries the backends use (``None``: not installed). TensorRT on a Jetson comes from
    JetPack without pip metadata, so its module is asked when the distribution is not found."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("numpy", "torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "transformers"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    if out["tensorrt"] is None:
        try:
            import tensorrt  # noqa: PLC0415 - optional

            if hasattr(tensorrt, "Builder"):  # not the type stubs alone
                out["tensorrt"] = str(getattr(tensorrt, "__version__", "unknown"))
        except Exception:  # noqa: BLE001 - any failure means: not usable
            pass
    return out


def onnxruntime_providers() -> list[str] | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return list(onnxruntime.get_available_providers())


def jetson_facts() -> dict[str, Any] | None:
    """Module name, L4T release, power mode (nvpmodel) and one tegrastats sample; ``None`` off a Jetson."""
    model = _read(JETSON_MODEL_FILE)
    nvpmodel = _run(["nvpmodel", "-q"])
    line = tegrastats_line()
    if model is None and nvpmodel is None and line is None:
        return None
    from ..export.trt.gpu import TEGRA_RELEASE_FILE, parse_l4t_release

    release = _read(TEGRA_RELEASE_FILE)
    return {
        "module": model.replace("\x00", "").strip() if model else None,
        "l4t_release": parse_l4t_release(release) if release else None,
        "nvpmodel": parse_nvpmodel(nvpmodel) if nvpmodel else None,
        "tegrastats": parse_tegrastats(line) if line else None,
        "tegrastats_line": line,
    }


def gpu_facts() -> list[dict[str, Any]]:
    """GPUs with driver and memory from nvidia-smi; else the one ``detect_gpu`` finds (torch, Jetson files)."""
    text = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                 "--format=csv,noheader,nounits"])
    gpus = parse_nvidia_smi_gpus(text) if text else []
    if gpus:
        return gpus
    from ..errors import BackendUnavailableError
    from ..export.trt.gpu import detect_gpu

    try:
        gpu = detect_gpu()
    except BackendUnavailableError:
        return []
    return [{"name": gpu.name, "driver": None, "memory_mib": None, "compute_capability": gpu.compute_capability}]


def cpu_facts() -> dict[str, Any]:
    import psutil

    cpuinfo = _read(Path("/proc/cpuinfo")) or ""
    return {
        "model": parse_cpu_model(cpuinfo) or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_total_mb": round(psutil.virtual_memory().total / 2**20),
    }


def collect_machine(threads: int | None = None) -> dict[str, Any]:
    """Everything the benchmark JSON says about the machine (see the module docstring)."""
    return {
        "host": platform.node(),
        "os": platform.platform(),
        "cpu": cpu_facts(),
        "threads": threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": load_average(),
        "gpus": gpu_facts(),
        "versions": library_versions(),
        "onnxruntime_providers": onnxruntime_providers(),
        "jetson": jetson_facts(),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for the Markdown report: CPU, cores, GPU, Jetson power mode, versions."""
    cpu = machine.get("cpu", {})
    parts = [f"{cpu.get('model')} ({cpu.get('logical_cores')} logical cores, threads used: {machine.get('threads')})"]
    for gpu in machine.get("gpus") or []:
        parts.append(f"{gpu['name']} (driver {gpu.get('driver') or 'n/a'})")
    jetson = machine.get("jetson") or {}
    if jetson.get("nvpmodel"):
        parts.append(f"power mode {jetson['nvpmodel']['power_mode']}")
    versions = machine.get("versions", {})
    libs = [f"{name} {versions[name]}" for name in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt")
            if versions.get(name)]
    return "; ".join(parts + [", ".join(libs)])
