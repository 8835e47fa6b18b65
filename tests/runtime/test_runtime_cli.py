"""``interpret --bundle`` and ``generate --bundle`` through the command line, the bundle checks, and a runtime that
does not import torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from uniecg_edge.cli import main
from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import BundleError
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.runtime import EdgeRuntime
from uniecg_edge.wfdb_io import read_record

REPORT_KEYS = {"record", "fs", "leads", "duration_s", "quality", "measurements", "rhythm", "critical", "text",
               "claims", "discrepancies", "provenance"}
PROVENANCE_KEYS = {"model", "model_sha256", "trained", "bundle_sha256", "backend", "execution_provider", "precision",
                   "package_version", "timings_s", "stop_reason", "leads_derived"}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_interpret_bundle_json_has_the_report_keys(int8_bundle: Path) -> None:
    result = invoke("interpret", str(EXAMPLE_RECORD), "--bundle", str(int8_bundle), "--json", "--max-new-tokens", "12")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert REPORT_KEYS <= set(report) and PROVENANCE_KEYS <= set(report["provenance"])
    prov = report["provenance"]
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    assert prov["backend"] == "onnxruntime" and prov["backend_requested"] == "auto"
    assert prov["execution_provider"] == "CPUExecutionProvider" and prov["precision"] == "int8"
    assert prov["model_sha256"] == manifest["source_model"]["sha256"] and len(prov["bundle_sha256"]) == 64
    assert any(note.startswith("tensorrt: no TensorRT engines") for note in prov["backend_notes"])
    timings = prov["timings_s"]
    assert {"ecg_encoder_s", "prefill_s", "decode_per_token_s", "total_s"} <= set(timings)
    assert timings["decode_tokens"] <= 12 + 4
    assert set(report["claims"]) >= {"heart_rate_bpm", "qtc_ms"}
    assert report["measurements"]["heart_rate_bpm"] is not None  # the DSP part is there too


def test_a_tampered_bundle_is_refused_in_one_line(int8_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(int8_bundle, bundle)
    data = bytearray((bundle / "unet.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "unet.onnx").write_bytes(bytes(data))
    line = one_line_error(invoke("interpret", str(EXAMPLE_RECORD), "--bundle", str(bundle)))
    assert "unet.onnx does not match the manifest" in line


def test_a_newer_format_version_is_refused_in_one_line(int8_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(int8_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format_version"] = 2
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    line = one_line_error(invoke("generate", "sinus rhythm", "--hr", "60", "--age", "40", "--sex", "M",
                                 "-o", str(tmp_path / "out"), "--bundle", str(bundle)))
    assert "format_version 2 is newer than this package reads (1)" in line


def test_backends_that_cannot_run_here_are_one_line_errors(int8_bundle: Path) -> None:
    record = str(EXAMPLE_RECORD)
    line = one_line_error(invoke("interpret", record, "--bundle", str(int8_bundle), "--backend", "tensorrt"))
    assert "TensorRT" in line
    line = one_line_error(invoke("interpret", record, "--bundle", str(int8_bundle), "--provider", "cuda"))
    assert "no CUDAExecutionProvider" in line
    line = one_line_error(invoke("interpret", record, "--backend", "onnxruntime"))
    assert "--backend onnxruntime needs --bundle DIR" in line


def test_generate_bundle_with_8_steps_writes_a_record(int8_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "generated"
    result = invoke("generate", "sinus rhythm", "--hr", "70", "--age", "50", "--sex", "F", "--steps", "8",
                    "--scheduler", "dpmsolver++", "--seed", "3", "-o", str(out), "--bundle", str(int8_bundle),
                    "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 8 and summary["provenance"]["scheduler"] == "dpmsolver++"
    assert summary["provenance"]["backend"] == "onnxruntime" and summary["provenance"]["seed"] == 3
    assert summary["timings_s"]["diffusion_steps"] == 8
    record = read_record(out.with_suffix(".hea"))
    assert record.leads == STANDARD_LEADS and record.fs == 500.0 and record.signal.shape == (12, 5000)
    assert np.isfinite(record.signal).all()
    np.testing.assert_allclose(record.signal[2], record.signal[1] - record.signal[0], atol=2e-3)  # III = II - I
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_generation_is_seeded_and_conditioned(int8_bundle: Path) -> None:
    runtime = EdgeRuntime.from_bundle(int8_bundle)
    a, b, c = (runtime.generate("sinus rhythm", hr=70, age=50, sex="F", steps=4, scheduler="ddim", seed=s)
               for s in (1, 1, 2))
    np.testing.assert_array_equal(a.record.signal, b.record.signal)
    assert not np.allclose(a.record.signal, c.record.signal)
    d = runtime.generate("sinus rhythm", hr=120, age=50, sex="F", steps=4, scheduler="ddim", seed=1)
    assert not np.allclose(a.record.signal, d.record.signal)
    assert a.provenance["steps"] == 4 and a.steps == 4 and a.ecg_tokens in {"emitted", "forced"}


def test_an_understanding_only_bundle_cannot_generate(fp32_bundle: Path) -> None:
    runtime = EdgeRuntime.from_bundle(fp32_bundle)
    with pytest.raises(BundleError, match="no graph 'gen_head'"):
        runtime.generate("sinus rhythm", hr=70, age=50, sex="F", steps=2)


NO_TORCH = """
import json, sys
from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.dsp import analyze_record
from uniecg_edge.runtime import EdgeRuntime
from uniecg_edge.wfdb_io import read_record
runtime = EdgeRuntime.from_bundle(sys.argv[1], backend="onnxruntime")
record = read_record(EXAMPLE_RECORD)
report = runtime.interpret(record, base_report=analyze_record(record), max_new_tokens=4)
generated = runtime.generate("sinus rhythm", hr=70, age=50, sex="M", steps=4, scheduler="dpmsolver++")
heavy = [m for m in ("torch", "transformers", "diffusers") if m in sys.modules]
shape = list(generated.record.signal.shape)
print(json.dumps({"heavy": heavy, "backend": report.provenance["backend"], "shape": shape}))
"""


def test_the_onnxruntime_runtime_never_imports_torch(int8_bundle: Path) -> None:
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(int8_bundle)], capture_output=True, text=True,
                          timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"heavy": [], "backend": "onnxruntime", "shape": [12, 5000]}
