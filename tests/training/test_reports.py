from __future__ import annotations

import pytest

from uniecg_edge.evidence import extract_claims
from uniecg_edge.training.dataset import ExampleSampler
from uniecg_edge.training.reports import (
    REPORT_STYLES,
    REQUEST_STYLES,
    generation_requests,
    stated_numbers,
    write_report,
)
from uniecg_edge.training.scenarios import RHYTHM_SCENARIOS


@pytest.fixture(scope="module")
def examples() -> list:
    sampler = ExampleSampler(seed=11)
    forced = [sampler.example("eval", i, rhythm=r) for i, r in enumerate(RHYTHM_SCENARIOS)]
    return forced + [sampler.example("train", i) for i in range(150)]


def _as_ints(claims: dict) -> dict:
    return {k: None if v is None else int(v) for k, v in claims.items()}


@pytest.mark.parametrize("style", list(REPORT_STYLES))
def test_every_number_a_report_states_is_read_back_exactly(examples: list, style: str) -> None:
    for ex in examples:
        report = write_report(ex.truth, style=style)
        claims = extract_claims(report)
        assert claims == {k: None if v is None else float(v) for k, v in stated_numbers(ex.truth).items()}, report


def test_stated_numbers_are_the_rounded_truth(examples: list) -> None:
    for ex in examples:
        t, stated = ex.truth, stated_numbers(ex.truth)
        assert stated["heart_rate_bpm"] == round(t["hr_bpm"]) and stated["qtc_ms"] == round(t["qtc_ms"])
        assert stated["qrs_ms"] == round(t["qrs_ms"]) and stated["axis_deg"] == round(t["axis_deg"])
        assert stated["pr_ms"] == (None if t["pr_ms"] is None else round(t["pr_ms"]))


def test_the_sampled_report_of_an_example_is_one_of_its_styles(examples: list) -> None:
    for ex in examples[:30]:
        assert ex.report in {write_report(ex.truth, style=s) for s in REPORT_STYLES}
        assert _as_ints(extract_claims(ex.report)) == stated_numbers(ex.truth)


def test_atrial_rates_are_never_read_as_the_ventricular_rate() -> None:
    ex = ExampleSampler(2).example("eval", 0, rhythm="atrial_flutter")
    atrial = round(ex.truth["atrial_rate_bpm"])
    for style in REPORT_STYLES:
        report = write_report(ex.truth, style=style)
        assert f"{atrial}/min" in report
        assert extract_claims(report)["heart_rate_bpm"] == round(ex.truth["hr_bpm"]) != atrial


def test_reports_give_the_evidence_for_the_rhythm_and_name_findings_by_lead() -> None:
    sampler = ExampleSampler(4)
    af = write_report(sampler.example("eval", 1, rhythm="atrial_fibrillation").truth, style="structured")
    assert "irregularly irregular" in af and "no discernible P waves" in af and "PR interval" not in af
    mobitz = write_report(sampler.example("eval", 2, rhythm="av_block_2_mobitz2").truth, style="narrative")
    assert "not conducted" in mobitz and "Mobitz type II" in mobitz
    for i in range(200):
        ex = sampler.example("train", i)
        if "rbbb" in ex.labels:
            assert "rSR' in V1 and V2" in ex.report
        if "st_elevation" in ex.labels:
            assert "ST elevation of up to" in ex.report and ex.truth["st_elevation_leads"][0] in ex.report


def test_generation_requests_cover_every_style() -> None:
    ex = ExampleSampler(6).example("eval", 3)
    requests = generation_requests(ex.truth, ex.report)
    assert set(requests) == set(REQUEST_STYLES)
    assert requests["report"] == ex.report
    assert f"ventricular rate of {round(ex.truth['hr_bpm'])} bpm" in requests["impression_rate"]
