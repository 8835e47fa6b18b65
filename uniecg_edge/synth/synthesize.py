"""``synthesize``: a finite synthetic 12-lead record with its ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..leads import STANDARD_LEADS
from ..record import EcgRecord
from .config import SynthConfig
from .engine import SynthEngine
from .morphology import CONDUCTIONS
from .projection import lead_vectors
from .rhythm import SinusRhythm


@dataclass
class SynthResult:
    """A synthetic record and what is true about it.

    ``truth`` keys: ``hr_bpm`` and ``rr_ms`` (means over the record's R peaks), ``pr_ms``, ``qrs_ms``, ``qt_ms``,
    ``qtc_ms`` (Bazett, on the mean RR), ``axis_deg``, ``rhythm``, ``conduction``, ``atrial_rate_bpm``,
    ``st_mv`` (ST shift per lead), ``statements`` (plain-text findings), ``p_onsets`` and ``qrs_onsets``
    (sample indices), ``age``, ``sex``. Values that do not apply are None.
    """

    record: EcgRecord
    r_peaks: np.ndarray
    beat_labels: list[str]
    truth: dict[str, Any]


def synthesize(config: SynthConfig, duration_s: float = 10.0) -> SynthResult:
    """Synthesise ``duration_s`` seconds of 12-lead ECG for ``config``; deterministic for its seed."""
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise InputError(f"synthesize needs a positive duration in seconds, got {duration_s!r}")
    n = int(round(duration_s * config.fs))
    if n < 1:
        raise InputError(f"synthesize: {duration_s!r} s at {config.fs:g} Hz holds no sample")
    engine = SynthEngine(config, keep_truth=True)
    blocks = [engine.render_block() for _ in range(math.ceil(n / engine.block_samples))]
    signal = np.concatenate(blocks, axis=1)[:, :n]
    beats = sorted((b for b in engine.beats if 0 <= b.r_peak < n), key=lambda b: b.r_peak)
    r_peaks = np.array([b.r_peak for b in beats], dtype=np.int64)
    labels = [b.label for b in beats]
    meta: dict[str, Any] = {
        "rhythm": config.rhythm,
        "conduction": config.conduction,
        "synthetic": True,
        "synth_config": config.to_dict(),
    }
    if config.age is not None:
        meta["age"] = float(config.age)
    if config.sex is not None:
        meta["sex"] = config.sex
    record = EcgRecord(signal, config.fs, STANDARD_LEADS, name=f"synthetic-{config.rhythm}-{config.seed}", meta=meta)
    truth = _truth(config, engine, r_peaks, labels, n, [b.qrs_onset for b in beats])
    return SynthResult(record, r_peaks, labels, truth)


def _truth(
    config: SynthConfig, engine: SynthEngine, r_peaks: np.ndarray, labels: list[str], n: int, qrs_onsets: list[int]
) -> dict[str, Any]:
    morph = engine.morphology
    rhythm = engine.rhythm
    rr_ms = float(np.mean(np.diff(r_peaks))) / config.fs * 1000.0 if len(r_peaks) >= 2 else None
    hr = 60_000.0 / rr_ms if rr_ms else None
    qt_ms = morph.qt_s * 1000.0
    pr = rhythm.pr_s
    st = {lead: float(v @ morph.dominant.st_vector) for lead, v in lead_vectors().items()}
    qtc_ms = qt_ms / math.sqrt(rr_ms / 1000.0) if rr_ms else None
    return {
        "hr_bpm": hr,
        "rr_ms": rr_ms,
        "pr_ms": pr * 1000.0 if pr is not None else None,
        "qrs_ms": morph.qrs_s * 1000.0,
        "qt_ms": qt_ms,
        "qtc_ms": qtc_ms,
        "axis_deg": float(config.axis_deg),
        "rhythm": config.rhythm,
        "conduction": config.conduction,
        "atrial_rate_bpm": rhythm.atrial_rate_bpm,
        "st_mv": st,
        "statements": _statements(config, engine, hr, qtc_ms, labels),
        "p_onsets": np.array([p for p in sorted(engine.p_onsets) if 0 <= p < n], dtype=np.int64),
        "qrs_onsets": np.array(qrs_onsets, dtype=np.int64),
        "age": config.age,
        "sex": config.sex,
    }


def _statements(
    config: SynthConfig, engine: SynthEngine, hr: float | None, qtc_ms: float | None, labels: list[str]
) -> list[str]:
    """Plain findings a reader of the record would state (for text targets and tests)."""
    rhythm = engine.rhythm
    found: list[str] = []
    if isinstance(rhythm, SinusRhythm):
        rate = hr if type(rhythm).statement == "sinus rhythm" and hr is not None else config.hr_bpm
        found.append("sinus bradycardia" if rate < 60 else "sinus tachycardia" if rate > 100 else "sinus rhythm")
        if type(rhythm).statement != "sinus rhythm":
            found.append(type(rhythm).statement)
        elif (rhythm.pr_s or 0.0) > 0.2:
            found.append("first degree AV block")
    else:
        found.append(type(rhythm).statement)
    statement = CONDUCTIONS.get(config.conduction).statement
    if statement:
        found.append(statement)
    if config.axis_deg < -30:
        found.append("left axis deviation")
    elif config.axis_deg > 90:
        found.append("right axis deviation")
    if config.st_shift_mv >= 0.1:
        found.append(f"ST elevation, {config.st_territory}")
    elif config.st_shift_mv <= -0.1:
        found.append(f"ST depression, {config.st_territory}")
    if qtc_ms is not None and qtc_ms > (460.0 if config.sex == "F" else 450.0):
        found.append("prolonged QT")
    if "V" in labels:
        found.append("premature ventricular complexes")
    if "A" in labels:
        found.append("premature atrial complexes")
    return found
