"""``uniecg-edge bench``: per-stage latency of the pipeline, backends and precisions side by side.

Modules: ``timing`` (warm-up, repeats, percentiles), ``machine`` (CPU, GPU, versions, Jetson power mode and
clocks), ``memory`` (peak resident and GPU memory), ``bandwidth`` (streaming-copy probe), ``ceiling`` (bytes per
token, the decode ceiling, the Jetson table), ``adapters`` (one per backend: ``torch_adapter``,
``runtime_adapter``), ``stages`` (what each stage times), ``runner`` (one run over every combination), ``scale``
(cost against model size, context, batch and steps), ``report`` (JSON and Markdown). Importing this package
imports neither torch nor onnxruntime.
"""

from __future__ import annotations

from .ceiling import DEVICE_PROFILES, Ceiling, DeviceProfile, decoder_ceiling
from .runner import BenchConfig, run_bench
from .timing import Timing, TimingConfig, measure, percentile

__all__ = [
    "DEVICE_PROFILES", "BenchConfig", "Ceiling", "DeviceProfile", "Timing", "TimingConfig", "decoder_ceiling",
    "measure", "percentile", "run_bench",
]
