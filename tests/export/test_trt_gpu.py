"""GPU facts for the engine key: parsers tested on captured output, probes on this machine's real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from uniecg_edge.errors import BackendUnavailableError
from uniecg_edge.export.trt import gpu as gpu_mod
from uniecg_edge.export.trt.gpu import detect_gpu, parse_jetson, parse_l4t_release, parse_nvidia_smi

# `nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader` on a two-GPU host
SMI_TWO_GPUS = "NVIDIA H100 80GB HBM3, 9.0\nNVIDIA A100-SXM4-40GB, 8.0\n"
SMI_FAILED = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
              "Make sure that the latest NVIDIA driver is installed and running.\n")
# /proc/device-tree/model is NUL-terminated; /etc/nv_tegra_release of L4T 36.4.7 (JetPack 6.2.1)
ORIN_NANO_MODEL = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00"
TEGRA_RELEASE = ("# R36 (release), REVISION: 4.7, GCID: 42132812, BOARD: generic, EABI: aarch64, "
                 "DATE: Thu Sep 18 22:54:44 UTC 2025\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
                 "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n")


def test_nvidia_smi_first_gpu() -> None:
    gpu = parse_nvidia_smi(SMI_TWO_GPUS)
    assert gpu is not None and (gpu.name, gpu.compute_capability, gpu.sm) == ("NVIDIA H100 80GB HBM3", "9.0", "90")


def test_nvidia_smi_failure_text_is_not_a_gpu() -> None:
    assert parse_nvidia_smi(SMI_FAILED) is None
    assert parse_nvidia_smi("") is None


def test_l4t_release() -> None:
    assert parse_l4t_release(TEGRA_RELEASE) == "36.4.7"
    assert parse_l4t_release("# R35 (release), REVISION: 5.0, GCID: 1, BOARD: t186ref") == "35.5.0"
    assert parse_l4t_release("not a release file") is None


@pytest.mark.parametrize(("model", "cap"), [
    (ORIN_NANO_MODEL, "8.7"),  # an Orin, although its name says Nano
    ("NVIDIA Jetson AGX Orin Developer Kit\x00", "8.7"),
    ("NVIDIA Jetson Xavier NX Developer Kit\x00", "7.2"),
    ("NVIDIA Jetson Nano Developer Kit\x00", "5.3"),
    ("NVIDIA Jetson AGX Thor Developer Kit\x00", "11.0"),
])
def test_jetson_compute_capability_by_family(model: str, cap: str) -> None:
    gpu = parse_jetson(model, TEGRA_RELEASE)
    assert gpu is not None
    assert gpu.compute_capability == cap and gpu.name == model.rstrip("\x00") and gpu.l4t_release == "36.4.7"


def test_other_boards_are_not_jetsons() -> None:
    assert parse_jetson("Raspberry Pi 4 Model B Rev 1.4\x00") is None


def test_jetson_probe_reads_the_device_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model").write_bytes(ORIN_NANO_MODEL.encode())
    (tmp_path / "nv_tegra_release").write_text(TEGRA_RELEASE)
    monkeypatch.setattr(gpu_mod, "JETSON_MODEL_FILE", tmp_path / "model")
    monkeypatch.setattr(gpu_mod, "TEGRA_RELEASE_FILE", tmp_path / "nv_tegra_release")
    gpu = detect_gpu(order=("jetson",))
    assert (gpu.source, gpu.sm, gpu.l4t_release) == ("jetson", "87", "36.4.7")


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") or Path("/proc/device-tree/model").exists():
        return True
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU: the no-GPU message cannot be observed")
def test_no_gpu_is_one_clear_line() -> None:
    with pytest.raises(BackendUnavailableError, match="no NVIDIA GPU found"):
        detect_gpu()
