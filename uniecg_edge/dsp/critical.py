"""Deterministic critical-value rules, independent of any model: pause, extreme rates, long QTc.

Each rule in ``CRITICAL_RULES`` reads a ``CriticalInput`` and returns findings; every finding carries its
evidence (the values, the thresholds, sample indices and times, the leads), so a reader can check it on the trace:

    {"rule": "pause", "message": "...", "evidence": {"value": 3400.0, "unit": "ms", "threshold": 3000.0,
     "sample_indices": [a, b], "times_s": [ta, tb], "leads": ["II"]}}

Nothing fires on a record whose quality is not usable (a lead-off is not an asystole), and a pause is only
reported over stretches where the leads used for detection hold signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..registry import Registry
from .measure import MeasurementSet

__all__ = ["CriticalConfig", "CriticalInput", "CRITICAL_RULES", "evaluate_critical"]


@dataclass(frozen=True)
class CriticalConfig:
    pause_ms: float = 3000.0
    brady_bpm: float = 40.0
    tachy_bpm: float = 150.0
    qtc_ms: float = 500.0
    min_signal_fraction: float = 0.9  # of finite samples in a stretch, for a pause to count


@dataclass
class CriticalInput:
    measurements: MeasurementSet
    fs: float
    n_samples: int
    detection_leads: list[str]
    signal_present: np.ndarray  # (n_samples,) bool: some detection lead holds a finite sample
    usable: bool
    t_end_leads: list[str] = field(default_factory=list)


Finding = dict[str, Any]
CriticalRule = Callable[[CriticalInput, CriticalConfig], list[Finding]]
CRITICAL_RULES: Registry[CriticalRule] = Registry("critical rule")


def _finding(rule: str, message: str, **evidence: Any) -> Finding:
    return {"rule": rule, "message": message, "evidence": evidence}


@CRITICAL_RULES.register("pause")
def _pause(data: CriticalInput, config: CriticalConfig) -> list[Finding]:
    """RR (or the stretch before the first / after the last beat) over ``pause_ms`` with signal present."""
    peaks = np.asarray(data.measurements.r_peaks, dtype=np.int64)
    limit = config.pause_ms * data.fs / 1000.0
    bounds = np.concatenate([[0], peaks, [data.n_samples - 1]])
    out = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if b - a <= limit:
            continue
        if data.signal_present[a: b + 1].mean() < config.min_signal_fraction:
            continue
        edge = k == 0 or k == len(bounds) - 2
        ms = (b - a) * 1000.0 / data.fs
        what = "no QRS" if edge else "pause"
        where = "record start" if k == 0 else ("record end" if edge else "")
        message = f"{what} for {ms / 1000.0:.1f} s" + (f" (from the {where})" if where else "")
        out.append(_finding("pause", message, value=round(ms, 1), unit="ms", threshold=config.pause_ms,
                            sample_indices=[int(a), int(b)], times_s=[round(a / data.fs, 3), round(b / data.fs, 3)],
                            leads=data.detection_leads, between_beats=not edge))
    return out


def _rate_evidence(data: CriticalInput) -> dict[str, Any]:
    m = data.measurements
    peaks = m.r_peaks
    return {
        "value": round(float(m.heart_rate_bpm), 1) if m.heart_rate_bpm is not None else None, "unit": "bpm",
        "rr_ms": round(float(m.rr_ms), 1) if m.rr_ms is not None else None, "beats": len(peaks),
        "sample_indices": [int(peaks[0]), int(peaks[-1])] if peaks else [],
        "times_s": [round(peaks[0] / data.fs, 3), round(peaks[-1] / data.fs, 3)] if peaks else [],
        "leads": data.detection_leads,
    }


@CRITICAL_RULES.register("bradycardia")
def _bradycardia(data: CriticalInput, config: CriticalConfig) -> list[Finding]:
    hr = data.measurements.heart_rate_bpm
    if hr is None or hr >= config.brady_bpm:
        return []
    return [_finding("bradycardia", f"heart rate {hr:.0f} bpm (under {config.brady_bpm:g})",
                     threshold=config.brady_bpm, **_rate_evidence(data))]


@CRITICAL_RULES.register("tachycardia")
def _tachycardia(data: CriticalInput, config: CriticalConfig) -> list[Finding]:
    hr = data.measurements.heart_rate_bpm
    if hr is None or hr <= config.tachy_bpm:
        return []
    return [_finding("tachycardia", f"heart rate {hr:.0f} bpm (over {config.tachy_bpm:g})",
                     threshold=config.tachy_bpm, **_rate_evidence(data))]


@CRITICAL_RULES.register("long_qtc")
def _long_qtc(data: CriticalInput, config: CriticalConfig) -> list[Finding]:
    m = data.measurements
    if m.qtc_bazett_ms is None or m.qtc_bazett_ms <= config.qtc_ms:
        return []
    return [_finding("long_qtc", f"QTc {m.qtc_bazett_ms:.0f} ms (Bazett; over {config.qtc_ms:g})",
                     value=round(m.qtc_bazett_ms, 1), unit="ms", threshold=config.qtc_ms, formula="bazett",
                     qt_ms=round(m.qt_ms, 1) if m.qt_ms is not None else None,
                     qtc_fridericia_ms=round(m.qtc_fridericia_ms, 1) if m.qtc_fridericia_ms is not None else None,
                     rr_ms=round(m.rr_ms, 1) if m.rr_ms is not None else None,
                     sample_indices=[int(p) for p in m.r_peaks[:1]] + [int(p) for p in m.r_peaks[-1:]],
                     leads=data.t_end_leads)]


def evaluate_critical(data: CriticalInput, config: CriticalConfig = CriticalConfig()) -> list[Finding]:
    """All findings of all rules, in the registry's order; none when the record is not usable."""
    if not data.usable:
        return []
    findings: list[Finding] = []
    for _name, rule in CRITICAL_RULES.items():
        findings.extend(rule(data, config))
    return findings
