"""Rhythm label from the RR intervals and the presence of P waves; ``None`` when it cannot be told.

Rules live in ``RHYTHM_RULES`` and are tried in order; the first that returns a label wins:

1. too few beats (under ``min_intervals`` RR intervals): no label;
2. irregular RR (normalised median absolute successive difference >= ``irregular``) without P waves:
   "atrial fibrillation"; with P waves unknown, or markedly irregular (>= ``marked_irregular``) even with P
   waves (frequent ectopics): "irregular rhythm" (a milder irregularity with P waves is sinus arrhythmia and
   falls through to the sinus rule);
3. regular with P waves: "sinus bradycardia" under 60 bpm, "sinus tachycardia" over 100 bpm, else
   "sinus rhythm";
4. regular without P waves (junctional, flutter, ventricular...): no label, since these rules cannot tell.

The irregularity measure ignores a few ectopic beats (it is a median) and reads 0.10-0.25 in atrial fibrillation
and under 0.03 in sinus rhythm (CPSC 2021 10-s windows, reference beats).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..registry import Registry

__all__ = ["RhythmConfig", "RhythmInput", "RHYTHM_RULES", "classify_rhythm", "rr_irregularity"]


@dataclass(frozen=True)
class RhythmConfig:
    min_intervals: int = 4
    irregular: float = 0.08
    marked_irregular: float = 0.15
    brady_bpm: float = 60.0
    tachy_bpm: float = 100.0


@dataclass(frozen=True)
class RhythmInput:
    rr_ms: np.ndarray
    heart_rate_bpm: float | None
    p_waves: bool | None


def rr_irregularity(rr_ms: np.ndarray) -> float | None:
    """Median |successive RR difference| / median RR; None with fewer than three intervals."""
    rr = np.asarray(rr_ms, dtype=np.float64)
    if rr.size < 3 or np.median(rr) <= 0:
        return None
    return float(np.median(np.abs(np.diff(rr))) / np.median(rr))


RhythmRule = Callable[[RhythmInput, RhythmConfig], "str | None | bool"]
# A rule returns a label, ``False`` to stop with no label, or ``None`` to pass to the next rule.
RHYTHM_RULES: Registry[RhythmRule] = Registry("rhythm rule")
_ORDER = ("too_few_beats", "irregular", "sinus")


@RHYTHM_RULES.register("too_few_beats")
def _too_few(data: RhythmInput, config: RhythmConfig) -> str | None | bool:
    return False if data.rr_ms.size < config.min_intervals or data.heart_rate_bpm is None else None


@RHYTHM_RULES.register("irregular")
def _irregular(data: RhythmInput, config: RhythmConfig) -> str | None | bool:
    value = rr_irregularity(data.rr_ms)
    if value is None or value < config.irregular:
        return None
    if data.p_waves is False:
        return "atrial fibrillation"
    if data.p_waves is None or value >= config.marked_irregular:
        return "irregular rhythm"
    return None


@RHYTHM_RULES.register("sinus")
def _sinus(data: RhythmInput, config: RhythmConfig) -> str | None | bool:
    if not data.p_waves or data.heart_rate_bpm is None:
        return False
    if data.heart_rate_bpm < config.brady_bpm:
        return "sinus bradycardia"
    if data.heart_rate_bpm > config.tachy_bpm:
        return "sinus tachycardia"
    return "sinus rhythm"


def classify_rhythm(data: RhythmInput, config: RhythmConfig = RhythmConfig()) -> str | None:
    """The first label the rules give, in order; None when no rule can tell."""
    for name in _ORDER:
        verdict = RHYTHM_RULES.get(name)(data, config)
        if verdict is False:
            return None
        if isinstance(verdict, str):
            return verdict
    return None
