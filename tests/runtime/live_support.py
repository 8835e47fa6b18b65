"""Helpers for the live-pipeline tests: test interpreters, JSON-lines reading, the truth of a synthetic stream."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from uniecg_edge.devices import device_from_url
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.model.pipeline import GeneratedEcg
from uniecg_edge.record import EcgRecord
from uniecg_edge.report import Report


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def synthetic_truth(url: str, n: int) -> np.ndarray:
    """(n, channels) mV a ``synthetic://`` URL streams first (the generator is deterministic per seed)."""
    from uniecg_edge.synth import SynthStream

    device = device_from_url(url)
    return SynthStream(device.config).read(n)[device._rows].T  # noqa: SLF001 - the driver's own lead selection


def synthetic_generate(request: str, *, hr: float, age: float, sex: str, steps: int | None = None,
                       scheduler: str | None = None, seed: int = 0) -> GeneratedEcg:
    """A 'generator' that returns the package's synthetic ECG at the requested rate (a known-good reference)."""
    from uniecg_edge.synth import SynthConfig, SynthStream

    signal = SynthStream(SynthConfig(hr_bpm=hr, seed=seed + 7)).read(5000)
    record = EcgRecord(signal, 500.0, STANDARD_LEADS, name="reference", meta={"request": request})
    return GeneratedEcg(record=record, text="", ecg_tokens="forced", steps=steps or 8)


class ScriptedInterpreter:
    """An interpreter whose behaviour a test sets: a delay per window, windows on which it raises."""

    def __init__(self, delay_s: float = 0.0, fail_on: set[int] | None = None, fail_every: int = 0) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on or set()
        self.fail_every = fail_every
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def interpret(self, record: EcgRecord, *, base_report: Report | None = None) -> Report:
        index = int(record.meta["window_index"])
        with self.lock:
            self.calls.append(index)
            count = len(self.calls)
        time.sleep(self.delay_s)
        if index in self.fail_on or (self.fail_every and count % self.fail_every == 0):
            raise RuntimeError(f"model exploded on window {index}")
        report = base_report or Report(record=record.name, fs=record.fs, leads=list(record.leads),
                                       duration_s=record.duration_s)
        report.text = f"window {index}: heart rate {report.measurements.heart_rate_bpm} bpm"
        report.provenance = {"backend": "scripted"}
        return report

    def generate(self, request: str, **kwargs: Any) -> GeneratedEcg:
        return synthetic_generate(request, **kwargs)
