from __future__ import annotations

import pytest

from uniecg_edge.evidence import extract_claims, find_discrepancies
from uniecg_edge.report import Measurements, Report


def test_claims_are_read_under_the_measurement_keys() -> None:
    text = ("Sinus rhythm, ventricular rate 72 bpm. PR interval 160 ms; QRS duration of 96 ms; "
            "QT 380 ms and QTc 412 ms. The frontal axis is 45 degrees.")
    claims = extract_claims(text)
    assert claims == {"heart_rate_bpm": 72.0, "rr_ms": None, "pr_ms": 160.0, "qrs_ms": 96.0,
                      "qt_ms": 380.0, "qtc_ms": 412.0, "axis_deg": 45.0}


def test_no_text_no_claims() -> None:
    assert set(extract_claims(None).values()) == {None}
    assert set(extract_claims("Normal ECG.").values()) == {None}


def test_contradictions_are_listed_and_agreements_are_not() -> None:
    claims = {"heart_rate_bpm": 72.0, "pr_ms": 160.0, "qtc_ms": 420.0, "axis_deg": 170.0,
              "qrs_ms": None, "qt_ms": None, "rr_ms": None}
    measured = Measurements(heart_rate_bpm=110.0, pr_ms=175.0, qtc_ms=None, axis_deg=-175.0, qrs_ms=100.0)
    found = find_discrepancies(claims, measured)
    assert [d["key"] for d in found] == ["heart_rate_bpm"]  # axis 170 vs -175 is 15° apart across ±180
    assert found[0]["claimed"] == 72.0 and found[0]["measured"] == 110.0


def test_report_json_is_strict() -> None:
    report = Report(record="x", fs=500.0, leads=["I"], duration_s=10.0,
                    measurements=Measurements(heart_rate_bpm=float("nan")))
    data = report.to_dict()
    assert data["measurements"]["heart_rate_bpm"] is None
    assert set(data) >= {"record", "fs", "leads", "duration_s", "quality", "measurements", "rhythm", "critical",
                         "text", "claims", "discrepancies", "provenance"}
    assert "NaN" not in report.to_json()


def test_extra_keys_may_not_replace_the_report_keys() -> None:
    import pytest

    report = Report(record="x", fs=500.0, leads=["I"], duration_s=10.0, extra={"window": {"index": 3}})
    assert report.to_dict()["window"] == {"index": 3}
    report.extra["text"] = "hidden"
    with pytest.raises(ValueError, match="text"):
        report.to_dict()


# ---- rhythm words against the DSP's rhythm --------------------------------------------------------------------
@pytest.mark.parametrize(("text", "dsp", "hr", "flagged"), [
    ("Rhythm: atrial fibrillation with a ventricular rate of 110 bpm.", "sinus tachycardia", 112.0, True),
    ("Rhythm: sinus tachycardia at 112 bpm.", "sinus tachycardia", 112.0, False),
    ("Sinus rhythm, ventricular rate of 98 bpm.", "sinus tachycardia", 102.0, False),  # near the 100 bpm bound
    ("Sinus rhythm, ventricular rate of 80 bpm.", "sinus tachycardia", 120.0, True),
    ("Sinus bradycardia; impression: sinus bradycardia.", "sinus rhythm", 70.0, True),
    ("Atrial fibrillation.", "irregular rhythm", 90.0, False),  # the DSP cannot tell: nothing to contradict
    ("Atrial fibrillation.", None, None, False),
    ("Normal axis, no rhythm named.", "sinus rhythm", 70.0, False),
])
def test_rhythm_discrepancy(text: str, dsp: str | None, hr: float | None, flagged: bool) -> None:
    from uniecg_edge.evidence import rhythm_discrepancy

    found = rhythm_discrepancy(text, dsp, hr)
    assert (found is not None) == flagged
    if found:
        assert found["key"] == "rhythm" and found["measured"] == dsp


def test_check_text_lists_numbers_then_rhythm() -> None:
    from uniecg_edge.evidence import check_text
    from uniecg_edge.report import Measurements

    measured = Measurements(heart_rate_bpm=112.0)
    claims, found = check_text("Atrial fibrillation with a ventricular rate of 60 bpm.", measured, "sinus tachycardia")
    assert claims["heart_rate_bpm"] == 60
    assert [d["key"] for d in found] == ["heart_rate_bpm", "rhythm"]
