"""Measurements against the synthetic generator's known truth, the formulas, and rhythm labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uniecg_edge.dsp import analyze_record, detect_r_peaks, frontal_axis_deg, measure, qtc_ms
from uniecg_edge.dsp.rhythm import RhythmInput, classify_rhythm, rr_irregularity
from uniecg_edge.record import EcgRecord
from uniecg_edge.synth import SynthConfig, synthesize


def _measured(cfg: SynthConfig, seconds: float = 10.0):
    syn = synthesize(cfg, seconds)
    rec = syn.record
    return syn, measure(rec.signal, rec.fs, rec.leads, detect_r_peaks(rec.signal, rec.fs))


@pytest.mark.parametrize(("hr", "pr", "qrs", "axis"), [
    (72, 160, 90, 60), (50, 200, 100, -30), (110, 140, 80, 100), (64, 240, 130, 0),
])
def test_intervals_and_axis_match_synthetic_truth(hr: float, pr: float, qrs: float, axis: float) -> None:
    syn, m = _measured(SynthConfig(hr_bpm=hr, pr_ms=pr, qrs_ms=qrs, axis_deg=axis, seed=5))
    t = syn.truth
    assert m.heart_rate_bpm == pytest.approx(t["hr_bpm"], abs=1.0)
    assert m.rr_ms == pytest.approx(t["rr_ms"], abs=10.0)
    assert m.pr_ms == pytest.approx(t["pr_ms"], abs=25.0)
    assert m.qrs_ms == pytest.approx(t["qrs_ms"], abs=15.0)
    assert m.qt_ms == pytest.approx(t["qt_ms"], abs=30.0)
    assert m.qtc_bazett_ms == pytest.approx(t["qtc_ms"], abs=35.0)
    assert m.axis_deg == pytest.approx(t["axis_deg"], abs=10.0)


def test_long_qt_is_measured_long() -> None:
    syn, m = _measured(SynthConfig(hr_bpm=70, qt_ms=540, seed=1))
    assert m.qt_ms == pytest.approx(540, abs=35.0)
    assert m.qtc_bazett_ms > 500


def test_qtc_formulas_and_axis_formula() -> None:
    assert qtc_ms(400.0, 1.0, "bazett") == pytest.approx(400.0)
    assert qtc_ms(400.0, 0.64, "bazett") == pytest.approx(500.0)
    assert qtc_ms(400.0, 0.729, "fridericia") == pytest.approx(400.0 / 0.9)
    assert qtc_ms(None, 1.0) is None and qtc_ms(400.0, None) is None
    # I = |H| cos(theta), aVF = (sqrt(3)/2) |H| sin(theta)  ->  theta back exactly
    for theta in (-90.0, -30.0, 0.0, 45.0, 60.0, 120.0, 180.0):
        lead_i = math.cos(math.radians(theta))
        avf = math.sqrt(3) / 2 * math.sin(math.radians(theta))
        assert frontal_axis_deg(lead_i, avf) == pytest.approx(theta if theta != -180 else 180.0, abs=1e-9)
    assert frontal_axis_deg(0.0, 0.0) is None


def test_unknowns_are_none_not_invented() -> None:
    # AF: no P waves, so no PR
    syn, m = _measured(SynthConfig(rhythm="afib", hr_bpm=95, seed=2))
    assert m.pr_ms is None and m.p_waves is False
    # one lead: no axis
    rec = synthesize(SynthConfig(hr_bpm=70), 10.0).record
    single = EcgRecord(rec.lead("V5")[None, :], rec.fs, ("V5",), name="one-lead")
    report = analyze_record(single)
    assert report.measurements.axis_deg is None and report.measurements.heart_rate_bpm is not None
    # too few beats: no delineation at all
    short = EcgRecord(rec.signal[:, :900], rec.fs, rec.leads, name="short")
    m_short = analyze_record(short).measurements
    assert m_short.qt_ms is None and m_short.pr_ms is None and m_short.qrs_ms is None


@pytest.mark.parametrize(("cfg", "label"), [
    (SynthConfig(hr_bpm=72, seed=3), "sinus rhythm"),
    (SynthConfig(hr_bpm=48, seed=3), "sinus bradycardia"),
    (SynthConfig(hr_bpm=125, seed=3), "sinus tachycardia"),
    (SynthConfig(rhythm="afib", hr_bpm=100, seed=3), "atrial fibrillation"),
])
def test_rhythm_labels_on_synthetic_records(cfg: SynthConfig, label: str) -> None:
    assert analyze_record(synthesize(cfg, 20.0).record).rhythm == label


def test_rhythm_rules() -> None:
    regular = np.full(10, 800.0)
    af = np.array([620.0, 910, 540, 1010, 700, 820, 560, 990, 640, 870])
    assert rr_irregularity(regular) == 0.0
    assert classify_rhythm(RhythmInput(regular, 75.0, True)) == "sinus rhythm"
    assert classify_rhythm(RhythmInput(regular, 75.0, False)) is None  # regular without P: cannot tell
    assert classify_rhythm(RhythmInput(af, 80.0, False)) == "atrial fibrillation"
    assert classify_rhythm(RhythmInput(af, 80.0, True)) == "irregular rhythm"
    assert classify_rhythm(RhythmInput(af, 80.0, None)) == "irregular rhythm"
    assert classify_rhythm(RhythmInput(regular[:2], 75.0, True)) is None  # too few beats
