"""Which GPU engines are built for: name and compute capability, from torch, nvidia-smi or Jetson's files.

Probes run in order: ``torch.cuda`` (when torch is installed and sees a GPU), ``nvidia-smi
--query-gpu=name,compute_cap --format=csv,noheader``, then a Jetson's ``/proc/device-tree/model`` with
``/etc/nv_tegra_release`` (Jetsons before JetPack 7 have no usable nvidia-smi; the compute capability then comes
from the module family). The parsers are pure functions tested on captured strings.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ...errors import BackendUnavailableError
from ...registry import Registry

log = logging.getLogger(__name__)

JETSON_MODEL_FILE = Path("/proc/device-tree/model")
TEGRA_RELEASE_FILE = Path("/etc/nv_tegra_release")

# Jetson module family -> compute capability, most specific first ("Orin Nano" is an Orin, not a Nano).
# Thor is sm_110 from CUDA 13 (JetPack 7); CUDA 12.8/12.9 called it sm_101.
JETSON_COMPUTE_CAPABILITY: tuple[tuple[str, str], ...] = (
    ("thor", "11.0"),
    ("orin", "8.7"),
    ("xavier", "7.2"),
    ("tx2", "6.2"),
    ("tx1", "5.3"),
    ("nano", "5.3"),
)


@dataclass(frozen=True)
class GpuInfo:
    """A GPU as the engine key names it."""

    name: str
    compute_capability: str  # "8.7"
    source: str  # torch | nvidia-smi | jetson | given
    l4t_release: str | None = None  # Jetson only: "36.4.3"

    @property
    def sm(self) -> str:
        """The compute capability without the dot: ``87``."""
        return self.compute_capability.replace(".", "")

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def parse_nvidia_smi(text: str) -> GpuInfo | None:
    """The first GPU of ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` output."""
    for line in text.splitlines():
        name, sep, cap = line.strip().rpartition(",")
        cap = cap.strip()
        if sep and name.strip() and re.fullmatch(r"\d+\.\d+", cap):
            return GpuInfo(name.strip(), cap, "nvidia-smi")
    return None


def parse_l4t_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 4.3, GCID: ...`` -> ``36.4.3`` (the L4T version of ``/etc/nv_tegra_release``)."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return f"{major}.{minor}.{patch or 0}"


def parse_jetson(model_text: str, release_text: str | None = None) -> GpuInfo | None:
    """A Jetson from its device-tree model string (NUL-terminated) and, optionally, its L4T release file."""
    model = model_text.replace("\x00", "").strip()
    if "jetson" not in model.lower() and "orin" not in model.lower() and "thor" not in model.lower():
        return None
    for family, cap in JETSON_COMPUTE_CAPABILITY:
        if family in model.lower():
            release = parse_l4t_release(release_text) if release_text else None
            return GpuInfo(model, cap, "jetson", release)
    return None


Probe = Callable[[], "GpuInfo | None"]
PROBES: Registry[Probe] = Registry("GPU probe")


@PROBES.register("torch")
def probe_torch() -> GpuInfo | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return GpuInfo(torch.cuda.get_device_name(0), f"{major}.{minor}", "torch")


@PROBES.register("nvidia-smi")
def probe_nvidia_smi() -> GpuInfo | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("nvidia-smi failed: %s", exc)
        return None
    return parse_nvidia_smi(out)


@PROBES.register("jetson")
def probe_jetson() -> GpuInfo | None:
    try:
        model = JETSON_MODEL_FILE.read_text(errors="replace")
    except OSError:
        return None
    try:
        release: str | None = TEGRA_RELEASE_FILE.read_text(errors="replace")
    except OSError:
        release = None
    return parse_jetson(model, release)


PROBE_ORDER: tuple[str, ...] = ("torch", "nvidia-smi", "jetson")


def detect_gpu(order: tuple[str, ...] = PROBE_ORDER) -> GpuInfo:
    """The first GPU the probes find; ``BackendUnavailableError`` when none does."""
    for name in order:
        gpu = PROBES.get(name)()
        if gpu is not None:
            log.info("GPU %s (sm%s) found by %s", gpu.name, gpu.sm, name)
            return gpu
    raise BackendUnavailableError("no NVIDIA GPU found (tried torch.cuda, nvidia-smi and /proc/device-tree/model)")
