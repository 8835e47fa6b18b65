"""Finding labels of a training example, read from its ground truth (never from what was asked of the simulator)."""

from __future__ import annotations

from typing import Any

ALL_LABELS: tuple[str, ...] = (
    "sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia", "atrial_fibrillation", "atrial_flutter",
    "av_block_1", "av_block_2_mobitz1", "av_block_2_mobitz2", "av_block_3",
    "pac", "pvc", "rbbb", "lbbb", "left_axis_deviation", "right_axis_deviation",
    "st_elevation", "st_depression", "prolonged_qt",
)
RHYTHM_LABELS = ALL_LABELS[:9]


def rhythm_label(truth: dict[str, Any]) -> str:
    """The rhythm label: sinus by rate (bradycardia < 60, tachycardia > 100 bpm), otherwise the rhythm's own."""
    scenario = truth["scenario"]
    rhythm = truth["rhythm"]
    if rhythm in ("sinus", "av_block_1"):
        hr = truth["hr_bpm"]
        return "sinus_bradycardia" if hr < 60 else "sinus_tachycardia" if hr > 100 else "sinus_rhythm"
    by_rhythm = {"afib": "atrial_fibrillation", "aflutter": "atrial_flutter"}
    return by_rhythm.get(rhythm, rhythm if rhythm in RHYTHM_LABELS else scenario)


def findings_labels(truth: dict[str, Any]) -> list[str]:
    """Labels read from the truth, in ``ALL_LABELS`` order after the rhythm label."""
    found = {rhythm_label(truth)}
    if truth["rhythm"] == "av_block_1":
        found.add("av_block_1")
    if truth["n_pac"]:
        found.add("pac")
    if truth["n_pvc"]:
        found.add("pvc")
    if truth["conduction"] in ("rbbb", "lbbb"):
        found.add(truth["conduction"])
    if truth["axis_deg"] < -30:
        found.add("left_axis_deviation")
    elif truth["axis_deg"] > 90:
        found.add("right_axis_deviation")
    if truth["st_elevation_leads"] and truth["st_shift_mv"] > 0:
        found.add("st_elevation")
    if truth["st_depression_leads"] and truth["st_shift_mv"] < 0:
        found.add("st_depression")
    if truth["qtc_ms"] > (460.0 if truth["sex"] == "F" else 450.0):
        found.add("prolonged_qt")
    return [label for label in ALL_LABELS if label in found]
