"""``uniecg-edge demo``: a real Cyton simulator on a pty, a real int8 export into the bundle cache, onnxruntime.

One export for the whole file: the first run finds a tampered bundle planted at its cache key (and a staging
folder left by a killed export), repairs the cache by exporting again, and writes everything; the second run
reuses the cached bundle. Tampering with an explicit ``--bundle`` is refused instead (the user's own artefact).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from uniecg_edge import __version__
from uniecg_edge.cli import main
from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.demo import bundle_key, cached_bundle_problem, running_simulator
from uniecg_edge.demo.bundle_cache import bundles_dir
from uniecg_edge.demo.console import event_line, first_sentence
from uniecg_edge.export.bundle import write_manifest

SECONDS = "14"  # signal seconds: windows end at 10, 12 and 14 s
SPEED = "10"
REPORT_KEYS = {"record", "fs", "leads", "duration_s", "quality", "measurements", "rhythm", "critical", "text",
               "claims", "discrepancies", "provenance", "reference", "latency_s", "window"}
LINE_KINDS = ("report", "rejected", "model_error", "critical")
OUR_THREADS = ("simulator-", "uniecg-")  # the simulator, acquisition, model worker and PNG sink threads


def _pty_fds() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == "/dev/ptmx" or target.startswith("/dev/pts/"):
            found.append(target)
    return sorted(found)


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _demo(*args: str) -> Any:
    return CliRunner().invoke(main, ["demo", "--seconds", SECONDS, "--speed", SPEED, *args])


def _one_line_error(result: Any, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def cache_target(tiny_model_dir: Path) -> tuple[Path, str]:
    from uniecg_edge.model.uniecg import checkpoint_sha256

    sha = checkpoint_sha256(tiny_model_dir)
    return bundles_dir() / bundle_key(tiny_model_dir, sha, "int8"), sha


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, cache_target: tuple[Path, str]) -> dict[str, Any]:
    """The first demo: a tampered bundle and a stale staging folder wait at its cache key."""
    target, sha = cache_target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "decoder.onnx").write_bytes(b"graph")
    write_manifest(target, {"format": "uniecg-edge-bundle", "format_version": 1, "precision": "int8",
                            "package_version": __version__, "source_model": {"sha256": sha},
                            "graphs": {"decoder": {"file": "decoder.onnx", "data_files": []}}})
    (target / "decoder.onnx").write_bytes(b"grapH")  # changed after the manifest was written
    stale = target.parent / f".{target.name}.partial-killed"
    stale.mkdir()
    (stale / "ecg_encoder.onnx").write_bytes(b"half")
    out = tmp_path_factory.mktemp("demo") / "out"
    threads, ptys = set(threading.enumerate()), _pty_fds()
    result = _demo("--out", str(out))
    return {"result": result, "out": out, "stale": stale, "target": target, "sha": sha,
            "new_threads": [t.name for t in set(threading.enumerate()) - threads
                            if t.is_alive() and t.name.startswith(OUR_THREADS)],
            "ptys_before": ptys, "ptys_after": _pty_fds()}


def test_first_run_repairs_the_tampered_cache_and_writes_everything(first_run):
    result, out = first_run["result"], first_run["out"]
    assert result.exit_code == 0, result.output
    assert "decoder.onnx does not match the manifest" in result.stderr and "exporting it again" in result.stderr
    assert "[7/7] vae_decoder" in result.stderr  # the export's own progress
    assert not first_run["stale"].exists()
    summary = json.loads((out / "summary.json").read_text())
    bundle = summary["runtime"]["bundle"]
    assert bundle["source"] == "exported" and Path(bundle["path"]) == first_run["target"]
    assert "decoder.onnx" in bundle["replaced"]
    assert cached_bundle_problem(first_run["target"], first_run["sha"], "int8") is None
    assert summary["runtime"]["precision"] == "int8" and summary["runtime"]["backend"] == "onnxruntime"
    assert summary["model"] == {"name": "uniecg-edge-default-untrained", "sha256": first_run["sha"],
                                "trained": False}
    assert summary["record"]["age"] == 28.0 and summary["record"]["sex"] == "M"  # from the HR06004 header
    assert first_run["new_threads"] == [] and first_run["ptys_after"] == first_run["ptys_before"]


def test_reports_pngs_and_summary_agree(first_run):
    out = first_run["out"]
    summary = json.loads((out / "summary.json").read_text())
    events = _events(out / "reports.jsonl")
    reports = [e for e in events if e["event"] == "report"]
    assert reports and events[-1]["event"] == "summary"
    run = events[-1]
    for report in reports:
        assert REPORT_KEYS <= set(report), REPORT_KEYS - set(report)
        assert report["provenance"]["precision"] == "int8" and report["provenance"]["trained"] is False
        assert report["reference"]["patient"] == {"heart_rate_bpm": report["measurements"]["heart_rate_bpm"],
                                                  "age": 28.0, "sex": "M"}
        assert {"III", "aVR", "aVL", "aVF"} <= set(report["leads"])
    kinds = collections.Counter(e["event"] for e in events)
    assert summary["interpreted"] == kinds["report"] == run["interpreted"]
    assert summary["rejected"] == kinds["rejected"] == run["rejected"]
    assert summary["windows"] == run["windows"] >= summary["interpreted"] + summary["rejected"]
    assert summary["signal_s"] == run["signal_s"] >= float(SECONDS)
    rates = [r["measurements"]["heart_rate_bpm"] for r in reports if r["measurements"]["heart_rate_bpm"]]
    hr = summary["heart_rate_bpm"]
    assert hr["count"] == len(rates) and hr["median"] == pytest.approx(np.median(rates), abs=1e-3)
    assert (hr["min"], hr["max"]) == pytest.approx((min(rates), max(rates)), abs=1e-3)
    assert 40 < hr["median"] < 120  # a resting adult's sinus rhythm, measured through the whole chain
    latencies = [r["latency_s"]["window_to_report"] for r in reports]
    lat = summary["latency_s"]["window_to_report"]
    assert lat["median"] == pytest.approx(np.median(latencies), abs=1e-3)
    assert lat["p95"] == pytest.approx(np.percentile(latencies, 95), abs=1e-3)
    assert summary["rhythms"] == dict(collections.Counter(r["rhythm"] for r in reports if r["rhythm"]))
    pngs = sorted((out / "png").glob("*.png"))
    assert pngs and {p.name for p in pngs} <= {f"{e['record']}.png" for e in events if e["event"] in LINE_KINDS}
    assert all(p.stat().st_size > 10_000 for p in pngs)
    assert summary["files"]["png"] == [p.name for p in pngs]
    from uniecg_edge.wfdb_io import read_record

    recording = read_record(out / "recording")
    assert recording.fs == 250.0
    assert recording.n_samples == run["samples"]["recorded"] == summary["samples"]["recorded"]
    assert list(recording.leads) == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]


def test_stdout_has_a_line_per_report_and_the_summary(first_run):
    result, out = first_run["result"], first_run["out"]
    events = _events(out / "reports.jsonl")
    lines = [line for line in result.stdout.splitlines() if line.startswith("t=")]
    shown = [e for e in events if e["event"] in LINE_KINDS]
    assert len(lines) == len(shown)
    for line, event in zip(lines, shown, strict=True):
        assert f"t={event['window']['end_s']:6.1f} s" in line and event["event"] in line
        if event["event"] == "report":
            assert f"HR {event['measurements']['heart_rate_bpm']:3.0f} bpm" in line
            assert f"latency {event['latency_s']['window_to_report']:.2f} s" in line
    assert "demo summary" in result.stdout and "UNTRAINED" in result.stdout and "PTB-XL" in result.stdout
    assert "through a simulated OpenBCI Cyton on /dev/pts/" in result.stderr


def test_second_run_reuses_the_cached_bundle(first_run):
    target = first_run["target"]
    before = (target.stat().st_ino, (target / "manifest.json").read_text())
    result = _demo("--out", str(first_run["out"]), "--json")  # the same folder: an earlier demo's files
    assert result.exit_code == 0, result.output
    assert f"using the cached int8 bundle {target}" in result.stderr
    assert "export" not in result.stderr
    assert (target.stat().st_ino, (target / "manifest.json").read_text()) == before
    summary = json.loads(result.stdout)  # --json: stdout is the summary alone
    assert summary["runtime"]["bundle"]["source"] == "cache" and summary["interpreted"] >= 1
    assert summary == json.loads((first_run["out"] / "summary.json").read_text())


def test_a_tampered_explicit_bundle_is_refused(first_run, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(first_run["target"], copy)
    graph = copy / "decoder.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    problem = cached_bundle_problem(copy, first_run["sha"], "int8")
    assert problem is not None and "decoder.onnx does not match the manifest" in problem
    out = tmp_path / "out"
    _one_line_error(_demo("--bundle", str(copy), "--out", str(out)), "decoder.onnx", "does not match the manifest")
    assert not out.exists()


def test_bad_input_is_one_line_and_exit_2(tmp_path, cache_target):
    from uniecg_edge.record import EcgRecord
    from uniecg_edge.wfdb_io import write_record

    listing = sorted(cache_target[0].parent.iterdir()) if cache_target[0].parent.exists() else []
    out = tmp_path / "out"
    _one_line_error(_demo("--record", str(tmp_path / "nope"), "--out", str(out)), "nope")
    limb_only = write_record(EcgRecord(np.zeros((2, 5000), np.float32), 500.0, ("I", "II"), name="limb"),
                             tmp_path / "limb")
    _one_line_error(_demo("--record", str(limb_only), "--out", str(out)), "no lead V1, V2, V3, V4, V5, V6")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    _one_line_error(_demo("--out", str(foreign)), "thesis.tex", "did not write")
    assert (foreign / "thesis.tex").read_text() == "precious"
    _one_line_error(CliRunner().invoke(main, ["demo", "--seconds", "5"]), "--seconds")
    assert not out.exists()
    assert (sorted(cache_target[0].parent.iterdir()) if cache_target[0].parent.exists() else []) == listing


def test_ctrl_c_ends_the_demo_cleanly_with_a_summary(first_run, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from uniecg_edge.cli import main; main()", "demo", "--seconds", "600",
               "--speed", "5", "--out", str(out), "--bundle", str(first_run["target"])]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            reports = out / "reports.jsonl"
            if reports.exists() and any(e["event"] == "report" for e in _events(reports)):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGINT" and summary["interpreted"] >= 1
    assert "stopped by SIGINT" in stdout
    assert summary["samples"]["recorded"] == summary["samples"]["acquired"] > 0


def test_the_simulator_is_stopped_and_its_pty_closed_on_an_error():
    before = _pty_fds()
    with pytest.raises(RuntimeError, match="boom"), running_simulator(EXAMPLE_RECORD, 1.0) as simulator:
        assert Path(simulator.path).exists() and simulator.is_alive()
        raise RuntimeError("boom")
    assert not simulator.is_alive() and _pty_fds() == before


def test_console_lines():
    assert first_sentence("Sinus rhythm.  Normal axis. Rate 61 bpm.") == "Sinus rhythm."
    assert first_sentence("   ") is None and first_sentence(None) is None
    assert first_sentence("x" * 200, limit=10) == "x" * 9 + "…"
    rejected = {"event": "rejected", "window": {"end_s": 22.0}, "measurements": {"heart_rate_bpm": None},
                "rhythm": None, "gate_reason": "lead I unusable",
                "quality": {"leads": {"I": {"flags": ["flat"]}, "II": {"flags": []}}},
                "latency_s": {"window_to_report": 0.0123}}
    line = event_line(rejected)
    assert line is not None and line.startswith("t=  22.0 s  rejected")
    assert "quality gate: lead I unusable" in line and "quality I flat" in line and "latency 0.01 s" in line
    assert event_line({"event": "summary"}) is None


def test_config_and_cache_key(tiny_model_dir):
    from uniecg_edge.demo import DemoConfig
    from uniecg_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="int8 or fp32"):
        DemoConfig(precision="fp16")
    with pytest.raises(ConfigError, match="at least one analysis window"):
        DemoConfig(seconds=9.0)
    keys = {bundle_key(tiny_model_dir, "ab" * 32, p) for p in ("int8", "fp32")}
    from uniecg_edge.export.quantize import QUANTIZATION_REVISION

    # a new package version or quantization method exports afresh instead of reusing an old bundle
    assert len(keys) == 2 and all(k.endswith(f"{__version__}-q{QUANTIZATION_REVISION}") and "abababab" in k
                                  for k in keys)
