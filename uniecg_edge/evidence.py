"""The evidence check: numbers a report's text states, read into ``claims`` and compared with the DSP measurements.

A claim contradicts a measurement when they differ by more than the tolerance below; every such contradiction
is listed in ``discrepancies`` and is never hidden. A claim with no measurement to compare is kept, unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .report import MEASUREMENT_KEYS, Measurements

_NUMBER = r"(-?\d{1,4}(?:\.\d+)?)"
_GAP = r"[^.;\d]{0,40}?"  # words between the quantity's name and its number, within one clause


@dataclass(frozen=True)
class ClaimRule:
    key: str
    patterns: tuple[str, ...]
    tolerance: float  # absolute, in the key's unit
    relative: float = 0.0  # plus this fraction of the measured value


# Ordered: QTc before QT so "QTc 450 ms" is not read as a QT.
CLAIM_RULES: tuple[ClaimRule, ...] = (
    ClaimRule("heart_rate_bpm", (
        rf"(?:heart rate|ventricular rate|rate){_GAP}{_NUMBER}\s*(?:bpm|beats?\s*(?:per|/)\s*min)",
        rf"{_NUMBER}\s*(?:bpm|beats?\s*(?:per|/)\s*min)",
    ), tolerance=5.0, relative=0.1),
    ClaimRule("rr_ms", (rf"\bRR(?: interval)?{_GAP}{_NUMBER}\s*ms",), tolerance=60.0, relative=0.1),
    ClaimRule("pr_ms", (rf"\bP-?R(?: interval)?{_GAP}{_NUMBER}\s*ms",), tolerance=40.0),
    ClaimRule("qrs_ms", (rf"\bQRS(?: duration| complex(?:es)?| width)?{_GAP}{_NUMBER}\s*ms",), tolerance=30.0),
    ClaimRule("qtc_ms", (rf"\bQTc(?: interval)?{_GAP}{_NUMBER}\s*ms",), tolerance=45.0),
    ClaimRule("qt_ms", (rf"\bQT(?! ?c)(?: interval)?{_GAP}{_NUMBER}\s*ms",), tolerance=45.0),
    ClaimRule("axis_deg", (
        rf"\baxis{_GAP}{_NUMBER}\s*(?:°|deg(?:rees?)?)",
        rf"{_NUMBER}\s*(?:°|deg(?:rees?)?){_GAP}axis",
    ), tolerance=30.0),
)


def extract_claims(text: str | None) -> dict[str, float | None]:
    """The first number the text states for each measurement key; ``None`` where it states none."""
    claims: dict[str, float | None] = {key: None for key in MEASUREMENT_KEYS}
    if not text:
        return claims
    for rule in CLAIM_RULES:
        for pattern in rule.patterns:
            match = re.search(pattern, text, flags=re.IGNORECASE)
            if match:
                claims[rule.key] = float(match.group(1))
                break
    return claims


def _angle_difference(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def find_discrepancies(claims: dict[str, float | None], measurements: Measurements) -> list[dict[str, Any]]:
    """Claims that contradict the measurements, each with both values and the tolerance applied."""
    out: list[dict[str, Any]] = []
    for rule in CLAIM_RULES:
        claimed = claims.get(rule.key)
        measured = getattr(measurements, rule.key)
        if claimed is None or measured is None:
            continue
        tolerance = rule.tolerance + rule.relative * abs(measured)
        diff = _angle_difference(claimed, measured) if rule.key == "axis_deg" else abs(claimed - measured)
        if diff > tolerance:
            out.append({
                "key": rule.key,
                "claimed": claimed,
                "measured": round(float(measured), 1),
                "difference": round(float(diff), 1),
                "tolerance": round(float(tolerance), 1),
            })
    return out


# Rhythm words the DSP can name (``dsp.rhythm``) and how the text says them; "sinus rhythm" never matches inside
# "sinus bradycardia" / "sinus tachycardia".
RHYTHM_PATTERNS = {
    "sinus rhythm": re.compile(r"\bsinus rhythm\b", re.IGNORECASE),
    "sinus bradycardia": re.compile(r"\bsinus bradycardia\b", re.IGNORECASE),
    "sinus tachycardia": re.compile(r"\bsinus tachycardia\b", re.IGNORECASE),
    "atrial fibrillation": re.compile(r"\batrial fibrillation\b", re.IGNORECASE),
    "atrial flutter": re.compile(r"\batrial flutter\b", re.IGNORECASE),
}
SINUS_RATE_BOUNDS_BPM = (60.0, 100.0)
SINUS_RATE_MARGIN_BPM = 5.0  # sinus rhythm vs brady/tachycardia is not a contradiction this close to 60 or 100


def named_rhythms(text: str | None) -> set[str]:
    """The rhythms of :data:`RHYTHM_PATTERNS` that ``text`` names."""
    return {name for name, pattern in RHYTHM_PATTERNS.items() if pattern.search(text or "")}


def _near_sinus_bound(heart_rate_bpm: float | None) -> bool:
    return heart_rate_bpm is not None and any(abs(heart_rate_bpm - bound) <= SINUS_RATE_MARGIN_BPM
                                              for bound in SINUS_RATE_BOUNDS_BPM)


def rhythm_discrepancy(text: str | None, dsp_rhythm: str | None, heart_rate_bpm: float | None
                       ) -> dict[str, Any] | None:
    """The text's rhythm against the DSP's (``None`` when they agree or either is silent or unsure).

    The DSP names a rhythm only when its rules can tell (regular RR with P waves; irregular RR without P waves);
    a text that names rhythms, none of them the DSP's, contradicts it. Within the sinus family, a rate within
    ``SINUS_RATE_MARGIN_BPM`` of 60 or 100 bpm is not held against the text.
    """
    named = named_rhythms(text)
    if not named or dsp_rhythm not in RHYTHM_PATTERNS or dsp_rhythm in named:
        return None
    sinus = {name for name in RHYTHM_PATTERNS if name.startswith("sinus")}
    if named <= sinus and dsp_rhythm in sinus and _near_sinus_bound(heart_rate_bpm):
        return None
    return {"key": "rhythm", "claimed": ", ".join(sorted(named)), "measured": dsp_rhythm}


def check_text(text: str | None, measurements: Measurements, dsp_rhythm: str | None
               ) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    """The claims of a model's text and every contradiction with the DSP: numbers, then the rhythm."""
    claims = extract_claims(text)
    discrepancies = find_discrepancies(claims, measurements)
    rhythm = rhythm_discrepancy(text, dsp_rhythm, measurements.heart_rate_bpm)
    return claims, discrepancies + ([rhythm] if rhythm else [])
