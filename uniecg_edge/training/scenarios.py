"""What a training example shows: a rhythm scenario plus optional findings, drawn as ``SynthConfig`` overrides.

Rhythm scenarios and findings live in registries with their sampling weights; :func:`draw_scenario` picks one
rhythm and, per exclusive group (conduction, axis, ST), at most one finding, keeping only combinations the
simulator renders faithfully (premature atrial beats need a sinus node, ST shifts are not drawn on top of a bundle
branch block whose own secondary ST-T changes would blur them, third-degree block uses a narrow junctional escape).
The labels an example finally carries are read from its ground truth (:mod:`.dataset`), not from this draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..registry import Registry

Overrides = dict[str, Any]
SINUS_FAMILY = ("sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia", "av_block_1")


@dataclass(frozen=True)
class Scenario:
    """A rhythm: its weight among rhythms and a sampler of ``SynthConfig`` overrides."""

    weight: float
    sample: Callable[[np.random.Generator], Overrides]


@dataclass(frozen=True)
class Finding:
    """A finding added on top of a rhythm: probability, exclusive group, the rhythms it fits, its overrides."""

    probability: float
    group: str
    sample: Callable[[np.random.Generator], Overrides]
    rhythms: tuple[str, ...] | None = None  # None: every rhythm


RHYTHM_SCENARIOS: Registry[Scenario] = Registry("rhythm scenario")
FINDINGS: Registry[Finding] = Registry("finding")
# simulator rhythm -> sampler of the overrides that give its counterpart rhythm (see rhythm_counterpart)
RHYTHM_COUNTERPARTS: Registry[Callable[[np.random.Generator], Overrides]] = Registry("rhythm counterpart")


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _normal_conduction(rng: np.random.Generator) -> Overrides:
    return {"pr_ms": _u(rng, 120, 200), "qrs_ms": _u(rng, 76, 104)}


RHYTHM_SCENARIOS.add("sinus_rhythm", Scenario(3.0, lambda r: {"rhythm": "sinus", "hr_bpm": _u(r, 63, 97),
                                                              **_normal_conduction(r)}))
RHYTHM_SCENARIOS.add("sinus_bradycardia", Scenario(1.2, lambda r: {"rhythm": "sinus", "hr_bpm": _u(r, 38, 56),
                                                                   **_normal_conduction(r)}))
RHYTHM_SCENARIOS.add("sinus_tachycardia", Scenario(1.2, lambda r: {"rhythm": "sinus", "hr_bpm": _u(r, 105, 150),
                                                                   **_normal_conduction(r)}))
RHYTHM_SCENARIOS.add("atrial_fibrillation", Scenario(1.5, lambda r: {
    "rhythm": "afib", "hr_bpm": _u(r, 55, 150), "qrs_ms": _u(r, 76, 104),
    "af_irregularity": _u(r, 0.15, 0.35), "fwave_mv": _u(r, 0.04, 0.15)}))
RHYTHM_SCENARIOS.add("atrial_flutter", Scenario(1.0, lambda r: {
    "rhythm": "aflutter", "hr_bpm": _u(r, 75, 150), "qrs_ms": _u(r, 76, 104),
    "flutter_wave_mv": _u(r, 0.15, 0.35)}))
RHYTHM_SCENARIOS.add("av_block_1", Scenario(1.0, lambda r: {
    "rhythm": "av_block_1", "hr_bpm": _u(r, 50, 95), "pr_ms": _u(r, 220, 320), "qrs_ms": _u(r, 76, 104)}))
RHYTHM_SCENARIOS.add("av_block_2_mobitz1", Scenario(0.8, lambda r: {
    "rhythm": "av_block_2_mobitz1", "hr_bpm": _u(r, 65, 100), "av_block_ratio": int(r.integers(3, 6)),
    **_normal_conduction(r)}))
RHYTHM_SCENARIOS.add("av_block_2_mobitz2", Scenario(0.8, lambda r: {
    "rhythm": "av_block_2_mobitz2", "hr_bpm": _u(r, 65, 100), "av_block_ratio": int(r.integers(3, 5)),
    **_normal_conduction(r)}))
RHYTHM_SCENARIOS.add("av_block_3", Scenario(0.8, lambda r: {
    "rhythm": "av_block_3", "hr_bpm": _u(r, 60, 100), "escape_rate_bpm": _u(r, 40, 55), "qrs_ms": _u(r, 76, 104)}))

_PAC_RHYTHMS = SINUS_FAMILY
_PVC_RHYTHMS = (*SINUS_FAMILY, "atrial_fibrillation")

FINDINGS.add("rbbb", Finding(0.09, "conduction", lambda r: {"conduction": "rbbb"}))
FINDINGS.add("lbbb", Finding(0.09, "conduction", lambda r: {"conduction": "lbbb"}))
FINDINGS.add("left_axis_deviation", Finding(0.10, "axis", lambda r: {"axis_deg": _u(r, -85, -35)}))
FINDINGS.add("right_axis_deviation", Finding(0.09, "axis", lambda r: {"axis_deg": _u(r, 95, 160)}))
FINDINGS.add("st_elevation", Finding(0.09, "st", lambda r: {
    "st_shift_mv": _u(r, 0.15, 0.4), "st_territory": str(r.choice(["anterior", "inferior", "lateral", "diffuse"]))}))
FINDINGS.add("st_depression", Finding(0.09, "st", lambda r: {
    "st_shift_mv": -_u(r, 0.15, 0.35), "st_territory": str(r.choice(["anterior", "inferior", "lateral"]))}))
FINDINGS.add("pvc", Finding(0.14, "pvc", lambda r: {"pvc_rate": _u(r, 0.1, 0.25)}, _PVC_RHYTHMS))
FINDINGS.add("pac", Finding(0.14, "pac", lambda r: {"pac_rate": _u(r, 0.1, 0.25)}, _PAC_RHYTHMS))
FINDINGS.add("prolonged_qt", Finding(0.09, "qt", lambda r: {"qtc_ms": _u(r, 475, 530)}))


@dataclass(frozen=True)
class ScenarioDraw:
    """One draw: the rhythm scenario, the findings added and the resulting ``SynthConfig`` overrides."""

    rhythm: str
    findings: tuple[str, ...]
    overrides: Overrides


def _pick_rhythm(rng: np.random.Generator) -> str:
    names = list(RHYTHM_SCENARIOS)
    weights = np.array([RHYTHM_SCENARIOS.get(n).weight for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def draw_scenario(rng: np.random.Generator, rhythm: str | None = None) -> ScenarioDraw:
    """A rhythm (weighted, or ``rhythm`` when given) and compatible findings, as ``SynthConfig`` overrides."""
    name = rhythm or _pick_rhythm(rng)
    overrides: Overrides = dict(RHYTHM_SCENARIOS.get(name).sample(rng))
    overrides["axis_deg"] = _u(rng, -25, 85)
    chosen: list[str] = []
    taken_groups: set[str] = set()
    for finding_name in list(FINDINGS):  # sorted order: stable draws
        finding = FINDINGS.get(finding_name)
        draw = float(rng.random())  # always drawn, so one finding's rules never shift the others' draws
        if finding.group in taken_groups or draw >= finding.probability:
            continue
        if finding.rhythms is not None and name not in finding.rhythms:
            continue
        if finding.group == "st" and "conduction" in taken_groups:
            continue
        if finding.group == "conduction" and "st" in taken_groups:
            continue
        chosen.append(finding_name)
        taken_groups.add(finding.group)
        overrides.update(finding.sample(rng))
    return ScenarioDraw(rhythm=name, findings=tuple(chosen), overrides=overrides)


# Flutter has none: the DSP's line reads its F waves as P waves and its RR as regular, like sinus rhythm's.
RHYTHM_COUNTERPARTS.add("sinus", lambda r: {"rhythm": "afib", "af_irregularity": _u(r, 0.15, 0.35),
                                            "fwave_mv": _u(r, 0.04, 0.15), "pac_rate": 0.0})
RHYTHM_COUNTERPARTS.add("afib", lambda r: {"rhythm": "sinus", "pr_ms": _u(r, 120, 200)})


def rhythm_counterpart(rhythm: str, rng: np.random.Generator) -> Overrides | None:
    """``SynthConfig`` overrides that turn a record of simulator rhythm ``rhythm`` into its counterpart (sinus <->
    atrial fibrillation; same rate, beat shapes, findings and noise), or None when it has none.
    Used to show the grounding phase an ECG whose rhythm disagrees with its evidence line and report
    (``Stage1Config.ground_swap_fraction``)."""
    if rhythm not in RHYTHM_COUNTERPARTS:
        return None
    return RHYTHM_COUNTERPARTS.get(rhythm)(rng)
