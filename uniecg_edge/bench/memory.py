"""Peak memory of one benchmarked combination: resident set (CPU) and GPU memory, with resettable peaks.

Linux keeps the peak resident set of a process in ``VmHWM`` (``/proc/self/status``); writing ``5`` to
``/proc/self/clear_refs`` resets it to the current RSS (Linux 4.0+), so each combination's peak is its own even
though all run in one process. Where that is not possible the process-wide ``ru_maxrss`` is reported and marked so.
GPU memory: torch's own peak counter on CUDA, else the process's usage as ``nvidia-smi`` lists it (onnxruntime and
TensorRT keep what they allocated, so the usage after a run is their peak). A Jetson shares one memory between
CPU and GPU: its GPU allocations show in ``tegrastats``' RAM, not here.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def parse_status_kb(text: str, key: str) -> int | None:
    """``VmHWM:   806248 kB`` -> 806248 (kB) for ``key`` in a ``/proc/<pid>/status`` text."""
    match = re.search(rf"^{re.escape(key)}:\s*(\d+)\s*kB", text, flags=re.MULTILINE)
    return int(match.group(1)) if match else None


class PeakMemory:
    """Start with :meth:`reset`, read with :meth:`read`; ``scope`` says whether the figure is this window's peak
    (``"since reset"``) or the whole process's (``"process"``)."""

    def __init__(self) -> None:
        self.scope = "process"
        self._torch_cuda = False

    def reset(self) -> None:
        try:
            CLEAR_REFS.write_text("5")
            self.scope = "since reset"
        except OSError:
            self.scope = "process"
        self._torch_cuda = _reset_torch_cuda()

    def read(self) -> dict[str, Any]:
        rss_mb: float | None = None
        try:
            kb = parse_status_kb(STATUS.read_text(), "VmHWM")
            rss_mb = kb / 1024 if kb is not None else None
        except OSError:
            pass
        if rss_mb is None:
            import resource

            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
            self.scope = "process"
        return {"peak_rss_mb": round(rss_mb, 1), "peak_rss_scope": self.scope, "gpu_memory_mb": self._gpu_mb()}

    def _gpu_mb(self) -> float | None:
        if self._torch_cuda:
            import torch

            return round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return process_gpu_memory_mb()


def _reset_torch_cuda() -> bool:
    import sys

    torch = sys.modules.get("torch")  # only when a backend already imported it
    if torch is None or not torch.cuda.is_available():
        return False
    torch.cuda.reset_peak_memory_stats()
    return True


def parse_compute_apps(text: str, pid: int) -> float | None:
    """MiB used by ``pid`` in ``nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits``."""
    total = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 2 and cells[0] == str(pid):
            try:
                total = (total or 0.0) + float(cells[1])
            except ValueError:
                continue
    return total


def process_gpu_memory_mb() -> float | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_compute_apps(out, os.getpid())
