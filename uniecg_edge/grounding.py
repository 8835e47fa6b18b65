"""Measurement-grounded prompts: the DSP's rhythm evidence written into the interpretation prompt.

GEM's grounded interpretations were written by a model that saw the ECG *and* beat-level machine measurements
(model-facts §2.3). A model trained with ``UniEcgConfig.grounded`` reads the same kind of evidence at run time:
one line before the question, from the DSP analysis of the very window it interprets::

    Measured: ventricular rate 72 bpm (60-100), mean RR 833 ms, RR irregularity 3 %, P waves present.

The line gives the rhythm evidence only (rate and its band by the sinus-rate limits, RR, RR regularity, P waves).
The band is there because a small model mixed up the line's two numbers: near 100 bpm the mean RR (~580 ms) was
read as the rate (57 bpm, "sinus bradycardia"), near 60 bpm the RR (~1050 ms) as 105 bpm. The rhythm, conduction,
axis, ST findings and the other intervals are still the model's reading of the ECG embeddings. When the DSP has no rate
(no usable lead, too few beats) the line is empty and the prompt is the ungrounded one, which a grounded model
is also trained on. Used alike by training, the torch pipeline and the onnxruntime engine (torch-free).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dsp.analysis import analyze_record
from .dsp.measure import rr_intervals_ms
from .dsp.rhythm import RhythmConfig, rr_irregularity
from .record import EcgRecord
from .report import Report

P_WAVE_WORDS = {True: "present", False: "absent", None: "not determined"}


def stated_rate(bpm: float) -> int:
    """The rate as the line states it (whole bpm); a report written from the line states the same number."""
    return round(bpm)


def rate_band(bpm: float) -> str:
    """Where ``bpm`` lies against the sinus-rate limits of the DSP's rhythm rules (bradycardia below, tachycardia
    above)."""
    limits = RhythmConfig()
    if bpm < limits.brady_bpm:
        return f"under {limits.brady_bpm:.0f}"
    if bpm > limits.tachy_bpm:
        return f"over {limits.tachy_bpm:.0f}"
    return f"{limits.brady_bpm:.0f}-{limits.tachy_bpm:.0f}"


def measurement_line(report: Report) -> str:
    """The evidence line for ``report`` (a DSP analysis), ending in a newline; "" when no rate was measured."""
    m = report.measurements
    if m.heart_rate_bpm is None or not np.isfinite(m.heart_rate_bpm):
        return ""
    rate = stated_rate(m.heart_rate_bpm)
    parts = [f"ventricular rate {rate} bpm ({rate_band(rate)})"]
    if m.rr_ms is not None and np.isfinite(m.rr_ms):
        parts.append(f"mean RR {m.rr_ms:.0f} ms")
    irregularity = rr_irregularity(rr_intervals_ms(np.asarray(m.r_peaks or [], dtype=np.float64), report.fs))
    if irregularity is not None:
        parts.append(f"RR irregularity {100.0 * irregularity:.0f} %")
    details: dict[str, Any] = report.extra.get("measurement_details") or {}
    parts.append(f"P waves {P_WAVE_WORDS.get(details.get('p_waves'), P_WAVE_WORDS[None])}")
    return "Measured: " + ", ".join(parts) + ".\n"


def grounded_question(default_question: str, question: str | None, report: Report | None) -> str:
    """The question slot of the interpretation prompt: the evidence line (if any) then the question."""
    line = "" if report is None else measurement_line(report)
    return line + (question or default_question)


def ground(record: EcgRecord, base_report: Report | None, default_question: str, question: str | None
           ) -> tuple[str, Report]:
    """For a grounded model: the question to ask about ``record`` and the DSP analysis it was built from
    (``base_report``, or a fresh analysis when the caller has none; the evidence check needs it too)."""
    report = base_report or analyze_record(record)
    return grounded_question(default_question, question, report), report
