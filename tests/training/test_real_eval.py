"""The real-record evaluation of issue 6: labels, NeuroKit2 reference, scoring, summaries, generation control, the
comparison of models and the ``benchmarks/eval_model.py`` CLI (tiny untrained default model, real records)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from uniecg_edge.errors import InputError
from uniecg_edge.evidence import extract_claims
from uniecg_edge.record import EcgRecord
from uniecg_edge.training import real_eval
from uniecg_edge.training.real_eval import (
    TARGETS,
    RecordRow,
    compare_models,
    expected_rhythm,
    fraction,
    generation_control,
    generation_request,
    model_window,
    parse_sampler,
    reference_heart_rate,
    score_record,
    summarise_rows,
)
from uniecg_edge.wfdb_io import read_record

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> Any:
    from uniecg_edge.model.pipeline import TorchPipeline

    return TorchPipeline.from_pretrained(tiny_model_dir)


# ---- labels and reference --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [
    ("E07500", "sinus_bradycardia"),  # 67741000119109, SB
    ("HR06002", "sinus_bradycardia"),  # SB beside SNR: the rate-named code wins
    ("HR06003", "sinus_tachycardia"),  # SNR beside STach
    ("JS20008", "sinus_rhythm"),  # sinus arrhythmia alone
    ("HR06000", "sinus_rhythm"),
    ("E07504", None),  # prolonged QT only: no rhythm label
])
def test_expected_rhythm_from_real_cinc_headers(shared_ecg: Path, name: str, expected: str | None) -> None:
    dx = read_record(shared_ecg / "cinc2021" / name).meta["dx"]
    assert expected_rhythm(dx) == expected


def test_expected_rhythm_prefers_atrial_rhythms_and_ignores_other_codes() -> None:
    assert expected_rhythm(["426783006", "164889003"]) == "atrial_fibrillation"
    assert expected_rhythm([" 164890007 "]) == "atrial_flutter"
    assert expected_rhythm(["59118001", "284470004"]) is None
    assert expected_rhythm([]) is None


def test_neurokit_reference_is_plausible_and_agrees_with_the_dsp(shared_ecg: Path) -> None:
    from uniecg_edge.dsp import analyze_record

    record = read_record(shared_ecg / "cinc2021" / "E07506")  # clean sinus rhythm
    reference = reference_heart_rate(record)
    assert 40.0 <= reference.median_bpm <= 150.0
    assert reference.beats >= 5
    assert abs(reference.mean_bpm - reference.median_bpm) < 3.0  # regular rhythm: both statistics agree
    dsp = analyze_record(record).measurements.heart_rate_bpm
    assert abs(dsp - reference.bpm("median")) < 3.0
    assert reference.bpm("mean") == reference.mean_bpm


def test_neurokit_reference_of_a_flat_lead_is_none() -> None:
    record = EcgRecord(np.zeros((2, 5000), np.float32), 500.0, ("I", "II"), name="flat")
    reference = reference_heart_rate(record)
    assert reference.median_bpm is None and reference.mean_bpm is None


def test_long_records_are_cut_to_the_model_window(shared_ecg: Path) -> None:
    record = read_record(shared_ecg / "ptbdb" / "s0010_re")
    cut = model_window(record, 10.0)
    assert cut.n_samples == int(10 * record.fs) < record.n_samples
    np.testing.assert_array_equal(cut.signal, record.signal[:, :cut.n_samples])
    assert model_window(cut, 10.0) is cut


# ---- scoring ---------------------------------------------------------------------------------------------------
BRADY_REPORT = ("Rhythm: sinus bradycardia with a ventricular rate of 52 bpm (mean RR interval 1154 ms); RR intervals "
                "are regular. Intervals: PR interval 160 ms, QRS duration 90 ms. Impression: sinus bradycardia; "
                "abnormal ECG.")


def test_a_report_that_states_the_rate_and_names_the_labelled_rhythm_agrees() -> None:
    flags = score_record(BRADY_REPORT, reference_hr=55.0, measured_hr=57.0, expected="sinus_bradycardia")
    assert flags["stated_hr_bpm"] == 52.0
    assert flags["hr_within"] is True and flags["stated_within"] is True
    assert flags["model_rhythms"] == ["sinus_bradycardia"]  # "sinus bradycardia" is not also "sinus rhythm"
    assert flags["rhythm_verdict"] == "agrees"


def test_a_report_without_a_rate_and_with_the_wrong_rhythm() -> None:
    flags = score_record("Narrow QRS complexes. Impression: normal sinus rhythm, normal ECG.", reference_hr=110.0,
                         measured_hr=121.0, expected="sinus_tachycardia")
    assert flags["stated_hr_bpm"] is None and flags["stated_within"] is None
    assert flags["hr_within"] is False  # the DSP is 11 bpm off the reference
    assert flags["rhythm_verdict"] == "disagrees"


def test_rates_beyond_tolerance_missing_measurements_and_mixed_rhythms() -> None:
    text = "The ECG shows sinus rhythm at 95 bpm. In summary: sinus rhythm, sinus tachycardia."
    flags = score_record(text, reference_hr=110.0, measured_hr=None, expected="sinus_tachycardia")
    assert flags["stated_hr_bpm"] == 95.0 and flags["stated_within"] is False  # 15 bpm > 10
    assert flags["hr_within"] is False  # the DSP measured nothing: a miss
    assert flags["rhythm_verdict"] == "mixed"
    flags = score_record(text, reference_hr=None, measured_hr=100.0, expected=None)
    assert flags["hr_within"] is None and flags["stated_within"] is None and flags["rhythm_verdict"] == "unlabelled"
    assert score_record(None, reference_hr=70.0, measured_hr=70.0, expected="sinus_rhythm")["rhythm_verdict"] == "none"


def test_the_summary_fractions_follow_from_the_rows() -> None:
    def row(**kw: Any) -> RecordRow:
        return RecordRow(group="cinc2021", record=kw.pop("record"), path="-", **kw)

    rows = [
        row(record="a", reference_hr_bpm=70.0, hr_within=True, stated_hr_bpm=72.0, stated_within=True,
            expected_rhythm="sinus_rhythm", rhythm_verdict="agrees"),
        row(record="b", reference_hr_bpm=100.0, hr_within=False, expected_rhythm="sinus_tachycardia",
            rhythm_verdict="none"),
        row(record="c", stated_hr_bpm=60.0),  # no reference, no rhythm label
        row(record="d", error="d.hea: no such WFDB header"),
        row(record="e", reference_hr_bpm=50.0, hr_within=True, stated_hr_bpm=70.0, stated_within=False,
            expected_rhythm="sinus_bradycardia", rhythm_verdict="mixed"),
    ]
    s = summarise_rows(rows)
    assert (s["records"], s["evaluated"], s["no_reference"], s["no_rhythm_label"]) == (5, 4, 1, 1)
    assert s["failed"] == [{"record": "d", "error": "d.hea: no such WFDB header"}]
    assert (s["hr_within_tolerance"]["hits"], s["hr_within_tolerance"]["n"]) == (2, 3)
    assert s["hr_within_tolerance"]["fraction"] == round(2 / 3, 4) and s["hr_within_tolerance"]["met"] is False
    assert (s["hr_stated"]["hits"], s["hr_stated"]["n"]) == (3, 4)
    assert (s["stated_hr_within_tolerance"]["hits"], s["stated_hr_within_tolerance"]["n"]) == (1, 2)
    assert (s["rhythm_agrees"]["hits"], s["rhythm_agrees"]["n"]) == (1, 3)
    assert fraction([True] * 9 + [False], TARGETS.hr_fraction)["met"] is True
    assert fraction([], 0.8) == {"n": 0, "hits": 0, "fraction": None, "target": 0.8, "met": None}


def test_a_record_that_fails_to_load_is_a_row_with_its_error(pipeline: Any, tmp_path: Path) -> None:
    bad = tmp_path / "BAD.hea"
    bad.write_text("BAD 12 500 5000\n" + "".join(f"BAD.mat 16 1000/mV 16 0 0 0 0 L{i}\n" for i in range(12)))
    row = real_eval.evaluate_record(pipeline, "extra", bad)
    assert row.error and "\n" not in row.error and "BAD" in row.error
    assert row.text is None
    summary = summarise_rows([row])
    assert summary["evaluated"] == 0 and summary["failed"][0]["record"] == "BAD"


def test_a_real_record_goes_through_the_interpret_path(pipeline: Any, shared_ecg: Path) -> None:
    row = real_eval.evaluate_record(pipeline, "cinc2021", shared_ecg / "cinc2021" / "E07500.hea")
    assert row.error is None and row.text is not None
    assert row.expected_rhythm == "sinus_bradycardia" and row.reference_hr_bpm is not None
    assert row.measured_hr_bpm is not None and row.hr_within == (abs(row.measured_hr_bpm - row.reference_hr_bpm) <= 5)
    assert row.stated_hr_bpm == extract_claims(row.text)["heart_rate_bpm"]


# ---- generation control ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("rate", "words"), [(52, "sinus bradycardia"), (72, "normal sinus rhythm"),
                                             (128, "sinus tachycardia")])
def test_generation_requests_name_the_rate_in_the_training_style(rate: int, words: str) -> None:
    request = generation_request(rate)
    assert words in request and request.endswith(f"ventricular rate of {rate} bpm")
    assert extract_claims(request)["heart_rate_bpm"] == rate


def test_sampler_specs() -> None:
    assert parse_sampler("ddim:8") == ("ddim", 8)
    assert parse_sampler("ddpm:1000") == ("ddpm", 1000)
    for bad in ("ddim", "ddim:", ":8", "ddim:0", "ddim:x"):
        with pytest.raises(InputError):
            parse_sampler(bad)


def test_generation_control_on_the_tiny_model(pipeline: Any) -> None:
    run = generation_control(pipeline, ("ddim", 3), per_rate=1, rates=[70], show_progress=False)
    assert run["sampler"] == "ddim:3" and run["unet_evaluations"] == 3
    (row,) = run["rows"]
    assert row["rate_bpm"] == 70.0 and "70 bpm" in row["request"] and row["sex"] == "M"
    measured = row["hr_measured_bpm"]
    assert row["within"] == (measured is not None and abs(measured - 70.0) <= TARGETS.gen_tolerance_bpm)
    assert run["hr_within_tolerance"]["hits"] == int(row["within"]) and run["hr_within_tolerance"]["n"] == 1
    limb = run["limb_relation"]  # the pipeline derives III from I and II: exact in memory, one count on disk
    assert limb["met"] is True and limb["max_error_mv"] < 1e-5 and limb["max_error_written_mv"] <= 1.5e-3


# ---- comparison ------------------------------------------------------------------------------------------------
def _result(name: str, total: int, cinc: dict[str, float], runs: list[tuple[str, int, float]]) -> dict[str, Any]:
    summary = {key: {"fraction": value} for key, value in cinc.items()}
    generation = [{"sampler": f"{kind}:{n}", "kind": kind, "unet_evaluations": n,
                   "hr_within_tolerance": {"fraction": value}} for kind, n, value in runs]
    return {"model": name, "parameters": {"total": total}, "summary": {"cinc2021": summary},
            "generation": generation}


def test_students_are_compared_with_the_largest_model() -> None:
    teacher = _result("teacher", 1000, {"hr_within_tolerance": 0.92, "hr_stated": 0.90,
                                        "stated_hr_within_tolerance": 0.85, "rhythm_agrees": 0.80},
                      [("ddim", 50, 0.80), ("ddpm", 1000, 0.85)])
    student = _result("student", 200, {"hr_within_tolerance": 0.88, "hr_stated": 0.80,
                                       "stated_hr_within_tolerance": 0.90, "rhythm_agrees": 0.76},
                      [("ddim-trailing", 8, 0.82)])
    comparison = compare_models([student, teacher])
    assert comparison["teacher"] == "teacher"
    (s,) = comparison["students"]
    assert s["parameter_ratio"] == 5.0 and s["parameter_ratio_met"] is True
    by_name = {m["metric"]: m for m in s["metrics"]}
    assert by_name["cinc2021 hr_within_tolerance"]["points"] == -4.0 and by_name["cinc2021 hr_within_tolerance"]["met"]
    assert by_name["cinc2021 hr_stated"]["points"] == -10.0 and not by_name["cinc2021 hr_stated"]["met"]
    assert by_name["cinc2021 stated_hr_within_tolerance"]["met"]  # better than the teacher
    assert by_name["generation hr_within_tolerance"]["points"] == 2.0  # student's own sampler vs teacher's own
    few = s["few_step"]
    assert (few["few_step"], few["reference"], few["evaluation_ratio"]) == ("ddim-trailing:8", "ddpm:1000", 125.0)
    assert few["hr_control_points"] == -3.0 and few["met"] is True
    assert compare_models([teacher]) is None


# ---- the CLI ---------------------------------------------------------------------------------------------------
def _cli() -> Any:
    spec = importlib.util.spec_from_file_location("eval_model", REPO / "benchmarks" / "eval_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_json_and_markdown_for_two_records_and_two_models(shared_ecg: Path, tiny_model_dir: Path,
                                                                     tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "eval.json", tmp_path / "eval.md"
    code = _cli().main(["--model", str(tiny_model_dir), "--model", str(tiny_model_dir), "--data", str(shared_ecg),
                        "--limit", "2", "--rates", "70", "--gen-per-rate", "1", "--sampler", "ddim:2",
                        "--json", str(out_json), "--markdown", str(out_md), "--no-progress"])
    assert code == 0
    data = json.loads(out_json.read_text())
    first_two = [p.stem for p in sorted((shared_ecg / "cinc2021").glob("*.hea"))[:2]]
    assert len(data["models"]) == 2
    for model in data["models"]:
        assert [r["record"] for r in model["records"]] == first_two
        assert model["summary"]["cinc2021"]["records"] == 2 and "extra" not in model["summary"]
        own = f"{model['generation'][0]['kind']}:{model['generation'][0]['steps']}"
        assert [g["sampler"] for g in model["generation"]] == [own, "ddim:2"]
        assert model["parameters"]["total"] == sum(v for k, v in model["parameters"].items() if k != "total")
    (student,) = data["comparison"]["students"]
    assert student["parameter_ratio"] == 1.0 and student["parameter_ratio_met"] is False
    md = out_md.read_text()
    assert all(f"| cinc2021 | {name} |" in md for name in first_two)
    assert "Students against the teacher" in md and "NOT met" in md


def test_cli_skips_with_one_line_when_the_data_is_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli().main(["--model", str(tmp_path), "--data", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not found" in err


def test_a_grounded_model_is_evaluated_grounded_unless_told_not_to(shared_ecg: Path, tiny_model_dir: Path,
                                                                    tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "grounded"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "grounded": True}))
    records = real_eval.find_records(shared_ecg, 1)
    kwargs: dict[str, Any] = {"rates": [70.0], "per_rate": 1, "max_new_tokens": 2, "show_progress": False}
    grounded = real_eval.evaluate_model(model, records, **kwargs)
    plain = real_eval.evaluate_model(model, records, ungrounded=True, **kwargs)
    assert grounded["grounded"] is True and plain["grounded"] is False
    assert real_eval.evaluate_model(tiny_model_dir, records, **kwargs)["grounded"] is False
