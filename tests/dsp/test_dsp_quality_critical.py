"""Per-lead quality flags and the critical rules (they fire with evidence, and not on normal records)."""

from __future__ import annotations

import numpy as np
import pytest

from uniecg_edge.dsp import CRITICAL_RULES, QUALITY_CHECKS, analyze_record, assess_quality
from uniecg_edge.record import EcgRecord
from uniecg_edge.synth import NoiseConfig, SynthConfig, synthesize


def _flags(report_or_quality, lead: str) -> list[str]:
    quality = report_or_quality if isinstance(report_or_quality, dict) else report_or_quality.quality
    return quality["leads"][lead]["flags"]


def test_flat_railed_nan_and_mains_leads_are_flagged_and_the_rest_clean() -> None:
    rec = synthesize(SynthConfig(hr_bpm=70, seed=1), 10.0).record
    x = rec.signal.astype(np.float64).copy()
    leads = list(rec.leads)
    x[leads.index("V1")] = 0.37  # flat (a disconnected channel holding its offset)
    v2 = x[leads.index("V2")]
    x[leads.index("V2")] = np.clip(v2, None, np.percentile(v2, 90))  # amplifier at its rail 10 % of the time
    x[leads.index("V3"), 1000:1600] = np.nan  # a 1.2 s gap
    x[leads.index("V4")] = np.nan  # nothing at all
    t = np.arange(x.shape[1]) / rec.fs
    x[leads.index("V5")] += 0.5 * np.sin(2 * np.pi * 60.0 * t)  # mains
    quality = assess_quality(x, rec.fs, tuple(leads))
    assert "flat" in _flags(quality, "V1") and "lead_off" in _flags(quality, "V1")
    assert "railed" in _flags(quality, "V2")
    assert _flags(quality, "V3") == ["missing"]
    assert "lead_off" in _flags(quality, "V4") and "missing" in _flags(quality, "V4")
    assert _flags(quality, "V5") == ["mains_noise"] and quality["leads"]["V5"]["mains_hz"] == 60.0
    for lead in ("I", "II", "III", "aVR", "aVL", "aVF", "V6"):
        assert _flags(quality, lead) == [], lead
    assert quality["usable"] is True
    assert set(QUALITY_CHECKS) >= {"flat", "railed", "lead_off", "mains_noise", "missing"}


def test_records_with_nan_and_flat_leads_analyse_without_crashing() -> None:
    rec = synthesize(SynthConfig(hr_bpm=80, seed=2), 10.0).record
    x = rec.signal.copy()
    x[0] = 0.0
    x[6, 2000:3000] = np.nan
    report = analyze_record(EcgRecord(x, rec.fs, rec.leads, name="damaged"))
    assert report.quality["usable"] and "flat" in _flags(report, "I")
    assert report.measurements.heart_rate_bpm == pytest.approx(80, abs=3)
    assert report.measurements.axis_deg is None  # lead I is unusable, so no axis is invented
    dead = analyze_record(EcgRecord(np.full((2, 5000), np.nan), 500.0, ("I", "II"), name="dead"))
    assert dead.quality["usable"] is False and dead.measurements.r_peaks == [] and dead.critical == []
    assert dead.measurements.heart_rate_bpm is None and dead.rhythm is None


def test_no_critical_findings_on_normal_records() -> None:
    for cfg in (SynthConfig(hr_bpm=72, seed=4), SynthConfig(hr_bpm=55, seed=5),
                SynthConfig(hr_bpm=95, seed=6, noise=NoiseConfig(baseline_mv=0.3, emg_mv=0.02, mains_mv=0.1))):
        assert analyze_record(synthesize(cfg, 20.0).record).critical == []


def test_pause_fires_with_its_evidence() -> None:
    syn = synthesize(SynthConfig(hr_bpm=70, seed=7, hrv_scale=0.0), 20.0)
    x = syn.record.signal.copy()
    fs = syn.record.fs
    r = syn.r_peaks
    # cut out three beats (after the T wave of one beat to just before the fourth R): a 3.4 s pause
    a, b = r[5] + int(0.45 * fs), r[9] - int(0.06 * fs)
    x[:, a:b] = np.median(x[:, a - 20:a], axis=1, keepdims=True)
    report = analyze_record(EcgRecord(x, fs, syn.record.leads, name="pause"))
    pauses = [f for f in report.critical if f["rule"] == "pause"]
    assert len(pauses) == 1
    ev = pauses[0]["evidence"]
    assert ev["value"] > 3000 and ev["threshold"] == 3000.0 and ev["unit"] == "ms"
    start, stop = ev["sample_indices"]
    assert abs(start - r[5]) <= 5 and abs(stop - r[9]) <= 5
    assert ev["times_s"] == [pytest.approx(start / fs, abs=1e-3), pytest.approx(stop / fs, abs=1e-3)]
    assert ev["leads"] == list(syn.record.leads)
    assert start in report.measurements.r_peaks and stop in report.measurements.r_peaks


@pytest.mark.parametrize(("hr", "rule"), [(34, "bradycardia"), (170, "tachycardia")])
def test_rate_rules_fire_with_evidence(hr: float, rule: str) -> None:
    report = analyze_record(synthesize(SynthConfig(hr_bpm=hr, seed=8), 20.0).record)
    found = [f for f in report.critical if f["rule"] == rule]
    assert len(found) == 1
    ev = found[0]["evidence"]
    assert ev["value"] == pytest.approx(hr, abs=2) and ev["unit"] == "bpm"
    assert ev["beats"] == len(report.measurements.r_peaks)
    assert ev["sample_indices"] == [report.measurements.r_peaks[0], report.measurements.r_peaks[-1]]


def test_long_qtc_fires_with_evidence() -> None:
    report = analyze_record(synthesize(SynthConfig(hr_bpm=75, qt_ms=540, seed=9), 20.0).record)
    found = [f for f in report.critical if f["rule"] == "long_qtc"]
    assert len(found) == 1
    ev = found[0]["evidence"]
    assert ev["value"] > 500 and ev["formula"] == "bazett" and ev["qt_ms"] == pytest.approx(540, abs=35)
    assert ev["value"] == report.measurements.qtc_ms
    assert ev["leads"] and set(ev["leads"]) <= set(report.leads) | {"III", "aVR", "aVL", "aVF"}
    assert set(CRITICAL_RULES) == {"pause", "bradycardia", "tachycardia", "long_qtc"}


def test_a_gap_in_the_signal_is_not_a_pause() -> None:
    rec = synthesize(SynthConfig(hr_bpm=70, seed=10), 20.0).record
    x = rec.signal.copy()
    x[:, 4000:6500] = np.nan  # 5 s of lost samples: missing data, not asystole
    report = analyze_record(EcgRecord(x, rec.fs, rec.leads, name="gap"))
    assert not [f for f in report.critical if f["rule"] == "pause"]
    assert all("missing" in _flags(report, lead) for lead in rec.leads)
