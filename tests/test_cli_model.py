from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.wfdb_io import read_record


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_interpret_json_has_the_report_keys(tiny_model_dir: Path, shared_ecg: Path) -> None:
    real = shared_ecg / "cinc2021" / "JS20000.hea"
    result = _run("interpret", str(EXAMPLE_RECORD), str(real), "--model", str(tiny_model_dir), "--json",
                  "--max-new-tokens", "8")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, ("HR06004", "JS20000"), strict=True):
        data = json.loads(line)
        assert data["record"] == name and data["fs"] == 500.0 and data["duration_s"] == 10.0
        assert set(data["measurements"]) >= {"heart_rate_bpm", "rr_ms", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms",
                                             "axis_deg", "r_peaks"}
        assert isinstance(data["text"], str) and data["provenance"]["trained"] is False
        assert isinstance(data["discrepancies"], list) and "quality" in data and "critical" in data


def test_truncated_record_exits_2_with_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(EXAMPLE_RECORD, tmp_path / "HR06004.hea")
    data = EXAMPLE_RECORD.with_suffix(".mat").read_bytes()
    (tmp_path / "HR06004.mat").write_bytes(data[:1000])
    _assert_one_line_error(_run("interpret", str(tmp_path / "HR06004.hea"), "--model", str(tiny_model_dir)),
                           "truncated", "HR06004.mat")


def test_missing_record_and_missing_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    _assert_one_line_error(_run("interpret", str(tmp_path / "nope.hea"), "--model", str(tiny_model_dir)), "nope.hea")
    _assert_one_line_error(_run("interpret", str(EXAMPLE_RECORD), "--model", str(tmp_path / "nomodel")), "nomodel")


def test_record_without_needed_leads(tiny_model_dir: Path, shared_ecg: Path) -> None:
    _assert_one_line_error(_run("interpret", str(shared_ecg / "mitdb" / "100"), "--model", str(tiny_model_dir)),
                           "missing")


def test_generate_writes_a_readable_12_lead_record_and_png(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen" / "ecg"
    result = _run("generate", "sinus rhythm, normal axis", "--hr", "70", "--age", "60", "--sex", "m",
                  "--steps", "4", "--scheduler", "ddim", "--seed", "1", "-o", str(out), "--model",
                  str(tiny_model_dir), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["steps"] == 4 and summary["provenance"]["seed"] == 1
    rec = read_record(out.with_suffix(".hea"))
    assert rec.leads == STANDARD_LEADS and rec.fs == 500.0 and rec.n_samples == 5000
    assert rec.meta["age"] == 60 and rec.meta["sex"] == "M" and np.isfinite(rec.signal).all()
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_option_values_exit_2(tiny_model_dir: Path, tmp_path: Path) -> None:
    base = ["generate", "x", "--age", "50", "-o", str(tmp_path / "g"), "--model", str(tiny_model_dir)]
    _assert_one_line_error(_run(*base, "--hr", "70", "--sex", "X"), "--sex")
    _assert_one_line_error(_run(*base, "--hr", "-5", "--sex", "F"), "--hr")
    _assert_one_line_error(_run(*base, "--hr", "70", "--sex", "F", "--steps", "0"), "--steps")


def test_interpret_summary_prints_number_and_rhythm_discrepancies() -> None:
    from uniecg_edge.commands.interpret import _summary
    from uniecg_edge.dsp import analyze_record
    from uniecg_edge.evidence import check_text

    report = analyze_record(read_record(EXAMPLE_RECORD))  # HR06004: sinus rhythm, 72 bpm
    assert report.rhythm == "sinus rhythm"
    report.text = "Atrial fibrillation with a ventricular rate of 150 bpm."
    report.claims, report.discrepancies = check_text(report.text, report.measurements, report.rhythm)
    report.provenance = {"model": "test", "trained": False}
    lines = _summary(report.to_dict()).splitlines()
    flagged = [line.strip() for line in lines if "DISCREPANCY" in line]
    assert len(flagged) == 2, lines
    assert flagged[0].startswith("DISCREPANCY heart_rate_bpm: text says 150, signal measures 72")
    assert flagged[1] == "DISCREPANCY rhythm: text says atrial fibrillation, signal measures sinus rhythm"
