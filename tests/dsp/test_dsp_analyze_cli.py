"""``uniecg-edge analyze``: JSON keys, R peaks over whole records, summaries, exit codes, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.report import MEASUREMENT_KEYS
from uniecg_edge.synth import SynthConfig, synthesize
from uniecg_edge.wfdb_io import write_record

from .conftest import wfdb_beats

TOP_KEYS = {"record", "fs", "leads", "duration_s", "quality", "measurements", "rhythm", "critical"}


def _synthetic(tmp_path: Path, name: str = "syn", **cfg: object) -> Path:
    syn = synthesize(SynthConfig(**cfg), 10.0)  # type: ignore[arg-type]
    syn.record.name = name
    return write_record(syn.record, tmp_path / name)


def test_json_has_the_design_keys_one_line_per_record(tmp_path: Path) -> None:
    a = _synthetic(tmp_path, "a", hr_bpm=70, seed=1)
    b = _synthetic(tmp_path, "b", hr_bpm=120, seed=2)
    result = CliRunner().invoke(main, ["analyze", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 2
    for line, hr in zip(lines, (70, 120), strict=True):
        data = json.loads(line)
        assert TOP_KEYS <= set(data)
        assert set(MEASUREMENT_KEYS) | {"r_peaks"} <= set(data["measurements"])
        assert data["fs"] == 500.0 and data["duration_s"] == 10.0 and len(data["leads"]) == 12
        assert data["quality"]["usable"] is True and set(data["quality"]["leads"]) == set(data["leads"])
        assert abs(data["measurements"]["heart_rate_bpm"] - hr) < 3
        assert isinstance(data["critical"], list)
    assert json.loads(lines[1])["rhythm"] == "sinus tachycardia"


def test_r_peaks_cover_the_whole_record_at_its_own_rate(shared_ecg: Path) -> None:
    """MIT-BIH 100: 30 min at 360 Hz, two leads; every reference beat found at its sample index."""
    base = shared_ecg / "mitdb" / "100"
    result = CliRunner().invoke(main, ["analyze", str(base), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["fs"] == 360.0 and data["duration_s"] > 1800
    peaks = np.asarray(data["measurements"]["r_peaks"])
    ref = wfdb_beats(base)
    assert peaks.size == ref.size - 1  # the last annotated beat is 25 ms before the end: its QRS is cut
    assert np.abs(peaks - ref[:-1]).max() <= 0.05 * 360
    assert data["measurements"]["axis_deg"] is None  # MLII and V5: no lead I, no axis
    assert data["rhythm"] == "sinus rhythm"


def test_summary_without_json(tmp_path: Path) -> None:
    path = _synthetic(tmp_path, "s", hr_bpm=35, seed=3)
    result = CliRunner().invoke(main, ["analyze", str(path)])
    assert result.exit_code == 0, result.output
    assert "s: 10.0 s at 500 Hz, 12 leads" in result.output
    assert "HR 35 bpm" in result.output or "HR 34 bpm" in result.output or "HR 36 bpm" in result.output
    assert "CRITICAL bradycardia" in result.output


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and "missing" in result.output
    bad = tmp_path / "bad.hea"
    bad.write_text("this is not a header\n")
    result = CliRunner().invoke(main, ["analyze", str(bad)])
    assert result.exit_code == 2 and result.output.startswith("error: ")
    # several records: the good one is reported, the bad one named, exit 2
    good = _synthetic(tmp_path, "good", hr_bpm=70)
    result = CliRunner().invoke(main, ["analyze", str(good), str(bad), "--json"])
    assert result.exit_code == 2
    assert '"record": "good"' in result.output and "bad.hea" in result.output
    result = CliRunner().invoke(main, ["analyze"])
    assert result.exit_code == 2


def test_analyze_does_not_import_torch(tmp_path: Path) -> None:
    path = _synthetic(tmp_path, "t", hr_bpm=70)
    code = (
        "import sys\n"
        "from uniecg_edge.cli import main\n"
        "try:\n"
        f"    main(['analyze', {str(path)!r}, '--json'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'transformers' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "print('no torch')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("no torch")
    assert json.loads(out.stdout.strip().splitlines()[0])["record"] == "t"
