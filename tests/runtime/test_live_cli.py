"""``uniecg-edge run``: signals in a real subprocess, bad input at start-up, the reference and PNG sinks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.devices.simulators.pty_port import PtyPort
from uniecg_edge.export.bundle import write_manifest
from uniecg_edge.wfdb_io import read_record

from .live_support import of_kind, read_events, synthetic_truth


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _bundle(root: Path, version: int = 1) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"fs": 500.0}))
    (root / "ecg_encoder.onnx").write_bytes(b"graph bytes")
    manifest = {"format": "uniecg-edge-bundle", "format_version": version, "precision": "int8",
                "graphs": {"ecg_encoder": {"file": "ecg_encoder.onnx", "data_files": []}}}
    write_manifest(root, manifest)
    return root


def _run(*args: str):
    return CliRunner().invoke(main, ["run", *args])


def test_bad_input_is_one_line_and_exit_2_at_start_up(tmp_path):
    rec = ["--record", str(tmp_path / "rec")]
    _one_line_error(_run("--device", "nosuch://x", *rec), "unknown device kind 'nosuch'")
    _one_line_error(_run("--device", "synthetic://?leads=I,II", *rec), "cannot feed the model", "missing V1")
    _one_line_error(_run("--device", "synthetic://?hr=999", *rec), "hr=")
    tampered = _bundle(tmp_path / "tampered")
    (tampered / "ecg_encoder.onnx").write_bytes(b"graph bytez")
    _one_line_error(_run("--device", "synthetic://", "--bundle", str(tampered), *rec), "ecg_encoder.onnx",
                    "does not match the manifest")
    incomplete = _bundle(tmp_path / "incomplete")
    (incomplete / "manifest.json").unlink()
    _one_line_error(_run("--device", "synthetic://", "--bundle", str(incomplete), *rec), "not an edge bundle")
    newer = _bundle(tmp_path / "newer", version=99)
    _one_line_error(_run("--device", "synthetic://", "--bundle", str(newer), *rec), "format_version 99")
    assert not (tmp_path / "rec.hea").exists()  # nothing was started


def test_a_silent_device_is_one_line_and_exit_2(tmp_path, tiny_model_dir):
    port = PtyPort()  # nothing answers on it
    try:
        result = _run("--device", f"openbci://{port.path}?timeout=0.5", "--model", str(tiny_model_dir),
                      "--record", str(tmp_path / "rec"), "--jsonl", str(tmp_path / "out.jsonl"))
    finally:
        port.close()
    _one_line_error(result, port.path, "no reply")


def test_reference_and_png_sinks(tmp_path, tiny_model_dir):
    out, png = tmp_path / "out.jsonl", tmp_path / "png"
    result = _run("--device", "synthetic://?speed=20&hr=80", "--model", str(tiny_model_dir), "--duration", "16",
                  "--record", str(tmp_path / "rec"), "--jsonl", str(out), "--png", str(png), "--reference",
                  "--age", "70", "--sex", "F", "--lsl", "uniecg-test")
    assert result.exit_code == 0, result.output
    events = read_events(out)
    reports = of_kind(events, "report")
    assert reports
    for report in reports:
        ref = report["reference"]
        assert ref["steps"] == 8 and ref["patient"]["age"] == 70.0 and ref["patient"]["sex"] == "F"
        assert ref["patient"]["heart_rate_bpm"] == report["measurements"]["heart_rate_bpm"]
        assert set(ref["per_lead"]) == {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
        assert ref["measurements"]["qrs_ms"]["live"] == report["measurements"]["qrs_ms"]
        assert "ventricular rate of 80 bpm" in ref["request"]
    written = sorted(p.name for p in png.glob("*.png"))
    assert written and set(written) <= {f"{r['record']}.png" for r in reports}
    assert events[-1]["event"] == "summary" and events[-1]["sink_errors"] == []


def _start(tmp_path: Path, url: str, model_dir: Path) -> tuple[subprocess.Popen, Path, Path]:
    out, rec = tmp_path / "out.jsonl", tmp_path / "rec"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from uniecg_edge.cli import main; main()", "run", "--device", url,
               "--model", str(model_dir), "--record", str(rec), "--jsonl", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc, out, rec


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_run_cleanly_with_the_recording_complete(tmp_path, tiny_model_dir, signum):
    url = "synthetic://?speed=10&seed=9"
    proc, out, rec = _start(tmp_path, url, tiny_model_dir)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(of_kind(read_events(out), "report")) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    events = read_events(out)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["stopped_by"] == signal.Signals(signum).name
    samples = summary["samples"]
    assert samples["acquired"] == samples["recorded"] > 0 and samples["dropped"] == 0
    record = read_record(rec)
    assert record.n_samples == samples["recorded"]
    np.testing.assert_allclose(record.signal.T, synthetic_truth(url, record.n_samples), atol=5e-6)
    sidecar = json.loads((tmp_path / "rec.run.json").read_text())
    assert sidecar["summary"]["samples"] == samples and sidecar["config"]["window_s"] == 10.0


def test_interpret_reference_adds_the_comparison_and_the_overlay(tmp_path, tiny_model_dir, monkeypatch):
    from uniecg_edge.data import EXAMPLE_RECORD

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["interpret", str(EXAMPLE_RECORD), "--model", str(tiny_model_dir), "--json",
                                       "--max-new-tokens", "8", "--reference"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    ref = data["reference"]
    assert ref["steps"] == 8 and ref["patient"]["heart_rate_bpm"] == data["measurements"]["heart_rate_bpm"]
    assert ref["mean_correlation"] is not None and -1.0 <= ref["mean_correlation"] <= 1.0
    png = Path(ref["png"])
    assert png.name == f"{data['record']}.reference.png" and (tmp_path / png).stat().st_size > 10_000
