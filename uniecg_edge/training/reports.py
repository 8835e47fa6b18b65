"""Evidence-based ECG reports written from the ground truth of a synthetic record, in GEM's style.

A report names the rhythm with its evidence (RR regularity, P waves, AV relation), states the rate as
"... ventricular rate of 72 bpm", the intervals ("PR interval 160 ms", "QRS duration 90 ms", "QT 380 ms, QTc
412 ms"), the axis ("frontal QRS axis 60 degrees"), the findings lead by lead, the signal quality and an
impression. Every number is the rounded truth, and the phrasing is the one :func:`uniecg_edge.evidence.extract_claims`
reads back exactly (tests check this for every style): atrial rates are written "/min", never "bpm", so they are
never taken for the ventricular rate.

Styles (``REPORT_STYLES``) vary the wording: ``structured`` (labelled sections), ``narrative`` (GEM's prose) and
``concise``. ``REQUEST_STYLES`` turn a report into what a user might type to ask for such an ECG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..registry import Registry
from .labels import rhythm_label

Truth = dict[str, Any]
_COUNT_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve")
_ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth"}
_TERRITORY_WORDS = {"anterior": "anterior", "inferior": "inferior", "lateral": "lateral", "diffuse": "diffuse"}
_NOISE_PHRASES = {"baseline_mv": "baseline wander", "emg_mv": "muscle tremor artefact",
                  "motion_mv": "electrode motion artefact", "tremor_mv": "limb tremor artefact"}


def _n(value: float) -> int:
    return int(round(value))


def _count(n: int) -> str:
    return _COUNT_WORDS[n] if n < len(_COUNT_WORDS) else str(n)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _leads(names: list[str]) -> str:
    """Lead names joined, with three or more consecutive chest leads as a range ("I, aVL and V3-V6")."""
    parts: list[str] = []
    chest = [int(n[1:]) for n in names if n.startswith("V")]
    parts += [n for n in names if not n.startswith("V")]
    i = 0
    while i < len(chest):
        j = i
        while j + 1 < len(chest) and chest[j + 1] == chest[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"V{chest[i]}-V{chest[j]}")
        else:
            parts += [f"V{c}" for c in chest[i:j + 1]]
        i = j + 1
    return _join(parts)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Facts:
    """The phrases every style assembles, computed once from the truth."""

    rhythm: str  # "sinus rhythm", "atrial flutter with 2:1 AV conduction", ...
    evidence: str  # why: RR regularity, P waves, AV relation
    hr: int
    rr: int
    pr: int | None
    qrs: int
    qt: int
    qtc: int
    axis: int
    axis_class: str  # "normal", "left axis deviation", "right axis deviation"
    lead_findings: tuple[str, ...]
    quality: str | None  # None: a clean record
    impression: str
    pr_note: str = ""  # what the PR refers to where it varies from beat to beat


def flutter_ratio(truth: Truth) -> int:
    return max(1, _n((truth["atrial_rate_bpm"] or 0.0) / truth["hr_bpm"]))


def rhythm_phrase(truth: Truth) -> str:
    label = rhythm_label(truth)
    names = {
        "sinus_rhythm": "sinus rhythm", "sinus_bradycardia": "sinus bradycardia",
        "sinus_tachycardia": "sinus tachycardia", "atrial_fibrillation": "atrial fibrillation",
        "atrial_flutter": f"atrial flutter with {flutter_ratio(truth)}:1 AV conduction",
        "av_block_2_mobitz1": "second-degree AV block, Mobitz type I (Wenckebach)",
        "av_block_2_mobitz2": "second-degree AV block, Mobitz type II",
        "av_block_3": "third-degree (complete) AV block",
    }
    name = names[label]
    if truth["rhythm"] == "av_block_1":
        name += " with first-degree AV block"
    return name


def rhythm_evidence(truth: Truth) -> str:
    rhythm = truth["rhythm"]
    atrial = _n(truth["atrial_rate_bpm"] or 0.0)
    ratio = truth.get("av_block_ratio") or 0
    ectopy = truth["n_pvc"] or truth["n_pac"]
    if rhythm in ("sinus", "av_block_1"):
        text = ("RR intervals are regular" + (" apart from the premature beats" if ectopy else "")
                + ", with an upright P wave before every QRS in I, II and aVF")
        if rhythm == "av_block_1":
            text += " and the same prolonged PR interval"
        return text
    if rhythm == "afib":
        return "RR intervals are irregularly irregular, with no discernible P waves and a fibrillatory baseline in V1"
    if rhythm == "aflutter":
        return (f"sawtooth flutter waves at an atrial rate of about {atrial}/min in II, III and aVF, every "
                f"{_ORDINALS.get(flutter_ratio(truth), 'other')} one conducted")
    if rhythm == "av_block_2_mobitz1":
        return (f"sinus P waves at {atrial}/min; the PR interval lengthens from beat to beat until a P wave is not "
                f"conducted, in {ratio}:{ratio - 1} groups")
    if rhythm == "av_block_2_mobitz2":
        return (f"sinus P waves at {atrial}/min with a constant PR interval; every {_ORDINALS[ratio]} P wave is "
                f"suddenly not conducted ({ratio}:{ratio - 1} AV conduction)")
    if rhythm == "av_block_3":
        return (f"sinus P waves at {atrial}/min march through with no relation to the QRS complexes of a slow, "
                "regular junctional escape rhythm")
    raise ValueError(f"no evidence phrase for rhythm {rhythm!r}")


def axis_class(axis_deg: float) -> str:
    return "left axis deviation" if axis_deg < -30 else "right axis deviation" if axis_deg > 90 else "normal"


def lead_findings(truth: Truth) -> list[str]:
    found: list[str] = []
    conduction = truth["conduction"]
    if conduction == "rbbb":
        found.append("right bundle branch block: rSR' in V1 and V2, broad slurred S waves in I, aVL, V5 and V6")
    elif conduction == "lbbb":
        found.append("left bundle branch block: broad notched R waves in I, aVL, V5 and V6, QS complexes in V1 to V3, "
                     "no septal q waves, secondary ST-T changes")
    else:
        found.append("narrow QRS complexes with normal R-wave progression")
    axis = axis_class(truth["axis_deg"])
    if axis == "left axis deviation":
        found.append("QRS positive in I and aVL, negative in II, III and aVF")
    elif axis == "right axis deviation":
        found.append("QRS negative in I, positive in III and aVF")
    shift = truth["st_shift_mv"]
    up, down = truth["st_elevation_leads"], truth["st_depression_leads"]
    territory = _TERRITORY_WORDS.get(truth["st_territory"] or "", "")
    if shift > 0 and up:
        text = f"ST elevation of up to {shift:.2f} mV in {_leads(up)} ({territory})"
        found.append(text + (f", reciprocal ST depression in {_leads(down)}" if down else ""))
    elif shift < 0 and down:
        text = f"ST depression of up to {-shift:.2f} mV in {_leads(down)} ({territory})"
        found.append(text + (f", ST elevation in {_leads(up)}" if up else ""))
    elif conduction == "normal":
        found.append("no significant ST deviation")
    if truth["n_pvc"]:
        n = truth["n_pvc"]
        found.append(f"{_count(n)} premature ventricular complex{'es' if n > 1 else ''} (wide QRS, full "
                     "compensatory pause)")
    if truth["n_pac"]:
        n = truth["n_pac"]
        found.append(f"{_count(n)} premature atrial complex{'es' if n > 1 else ''} (abnormal P wave, narrow QRS, no "
                     "compensatory pause)")
    return found


def quality_phrase(truth: Truth) -> str | None:
    phrases = []
    for name in truth["noise"]:
        if name == "mains_mv":
            phrases.append(f"{_n(truth['mains_hz'])} Hz mains interference")
        else:
            phrases.append(_NOISE_PHRASES[name])
    return f"{_join(phrases)}; the tracing remains interpretable" if phrases else None


def impression(truth: Truth) -> str:
    labels = truth["labels"]
    parts = [rhythm_phrase(truth)]
    words = {
        "rbbb": "right bundle branch block", "lbbb": "left bundle branch block",
        "left_axis_deviation": "left axis deviation", "right_axis_deviation": "right axis deviation",
        "st_elevation": f"ST elevation, {truth['st_territory']}",
        "st_depression": f"ST depression, {truth['st_territory']}",
        "pvc": "premature ventricular complexes", "pac": "premature atrial complexes", "prolonged_qt": "prolonged QTc",
    }
    parts += [words[label] for label in labels if label in words]
    if labels == ["sinus_rhythm"]:
        return "normal sinus rhythm, normal ECG"
    return ", ".join(parts) + "; abnormal ECG"


def facts(truth: Truth) -> Facts:
    pr = truth["pr_ms"]
    return Facts(
        rhythm=rhythm_phrase(truth), evidence=rhythm_evidence(truth), hr=_n(truth["hr_bpm"]), rr=_n(truth["rr_ms"]),
        pr=None if pr is None else _n(pr), qrs=_n(truth["qrs_ms"]), qt=_n(truth["qt_ms"]), qtc=_n(truth["qtc_ms"]),
        axis=_n(truth["axis_deg"]), axis_class=axis_class(truth["axis_deg"]),
        lead_findings=tuple(lead_findings(truth)), quality=quality_phrase(truth), impression=impression(truth),
        pr_note=" in the first beat of each group" if truth["rhythm"] == "av_block_2_mobitz1" else "",
    )


# ---- styles --------------------------------------------------------------------------------------------------
REPORT_STYLES: Registry[Callable[[Facts], str]] = Registry("report style")


@REPORT_STYLES.register("structured")
def _structured(f: Facts) -> str:
    intervals = ([f"PR interval {f.pr} ms{f.pr_note}"] if f.pr is not None else [])
    intervals += [f"QRS duration {f.qrs} ms", f"QT {f.qt} ms", f"QTc {f.qtc} ms"]
    text = (f"Rhythm: {f.rhythm} with a ventricular rate of {f.hr} bpm (mean RR interval {f.rr} ms); {f.evidence}. "
            f"Intervals: {', '.join(intervals)}. Axis: frontal QRS axis {f.axis} degrees ({f.axis_class}). "
            f"Leads: {'; '.join(f.lead_findings)}. ")
    text += f"Quality: {f.quality}. " if f.quality else ""
    return text + f"Impression: {f.impression}."


@REPORT_STYLES.register("narrative")
def _narrative(f: Facts) -> str:
    text = f"The ECG shows {f.rhythm} with a ventricular rate of {f.hr} bpm (mean RR interval {f.rr} ms). "
    text += f"{_cap(f.evidence)}. "
    if f.pr is not None:
        text += f"The PR interval is {f.pr} ms{f.pr_note}, the QRS duration is {f.qrs} ms, "
    else:
        text += f"The QRS duration is {f.qrs} ms, "
    text += f"the QT interval is {f.qt} ms and the QTc is {f.qtc} ms. "
    text += f"The frontal QRS axis is {f.axis} degrees, {f.axis_class}. "
    text += " ".join(f"{_cap(item)}." for item in f.lead_findings) + " "
    if f.quality:
        text += f"There is {f.quality}. "
    return text + f"In summary: {f.impression}."


@REPORT_STYLES.register("concise")
def _concise(f: Facts) -> str:
    intervals = ([f"PR interval {f.pr} ms"] if f.pr is not None else [])
    intervals += [f"QRS duration {f.qrs} ms", f"QT {f.qt} ms", f"QTc {f.qtc} ms"]
    text = (f"{_cap(f.rhythm)}, ventricular rate of {f.hr} bpm, mean RR {f.rr} ms; {f.evidence}. "
            f"{', '.join(intervals)}. Frontal QRS axis {f.axis} degrees. "
            f"{_cap('; '.join(f.lead_findings))}. ")
    if f.quality:
        text += f"{_cap(f.quality)}. "
    return text + f"Impression: {f.impression}."


def write_report(truth: Truth, rng: np.random.Generator | None = None, style: str | None = None) -> str:
    """The report of ``truth`` in ``style`` (drawn with ``rng`` when None; ``structured`` without an rng)."""
    if style is None:
        style = "structured" if rng is None else list(REPORT_STYLES)[int(rng.integers(len(list(REPORT_STYLES))))]
    return REPORT_STYLES.get(style)(facts(truth))


def stated_numbers(truth: Truth) -> dict[str, int | None]:
    """The numbers every report of ``truth`` states, under the keys of ``evidence.extract_claims``."""
    f = facts(truth)
    return {"heart_rate_bpm": f.hr, "rr_ms": f.rr, "pr_ms": f.pr, "qrs_ms": f.qrs, "qt_ms": f.qt, "qtc_ms": f.qtc,
            "axis_deg": f.axis}


# ---- generation requests -------------------------------------------------------------------------------------
REQUEST_STYLES: Registry[Callable[[Truth, str], str]] = Registry("request style")
REQUEST_STYLES.add("report", lambda truth, report: report)
REQUEST_STYLES.add("impression_rate", lambda truth, report:
                   f"{impression(truth)}, ventricular rate of {_n(truth['hr_bpm'])} bpm")
REQUEST_STYLES.add("impression", lambda truth, report: impression(truth))


def generation_requests(truth: Truth, report: str) -> dict[str, str]:
    """Every request style's text for one example (what a user types to ask for this ECG)."""
    return {name: REQUEST_STYLES.get(name)(truth, report) for name in REQUEST_STYLES}
