"""Counters and latency percentiles of a live run, in constant memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


class LatencyTrack:
    """The last ``keep`` values of one latency (seconds) and their percentiles; memory does not grow."""

    def __init__(self, keep: int = 4096) -> None:
        self._values = np.zeros(keep, dtype=np.float64)
        self._lock = threading.Lock()
        self.count = 0
        self.maximum = 0.0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values[self.count % self._values.size] = seconds
            self.count += 1
            self.maximum = max(self.maximum, seconds)

    def summary(self) -> dict[str, float | int | None]:
        with self._lock:
            values = self._values[: min(self.count, self._values.size)].copy()
        if not values.size:
            return {"count": 0, "p50": None, "p95": None, "max": None}
        return {"count": self.count, "p50": round(float(np.percentile(values, 50)), 4),
                "p95": round(float(np.percentile(values, 95)), 4), "max": round(self.maximum, 4)}


@dataclass
class RunCounters:
    """What happened to the windows of a run."""

    windows: int = 0  # windows completed (each got the fast path)
    rejected: int = 0  # failed the quality gate: reported with flags, no model text
    critical_alerts: int = 0  # windows with critical findings, reported at once
    offered: int = 0  # passed the gate and went to the model worker
    interpreted: int = 0  # the model reported on them
    model_errors: int = 0
    dsp_errors: int = 0
    worker_restarts: int = 0
    device_events: int = 0
    gaps: int = 0
    gap_samples: int = 0
    latencies: dict[str, LatencyTrack] = field(default_factory=lambda: {
        "window_to_report": LatencyTrack(), "window_to_rejected": LatencyTrack(), "dsp": LatencyTrack(),
        "model": LatencyTrack()})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "latencies"}
        data["latency_s"] = {name: track.summary() for name, track in self.latencies.items()}
        return data
