"""``uniecg-edge bench`` end to end on the default model: the JSON rows and the Markdown table, skipped backends
with their reason, bad input in one line, and a small ``--scale`` run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from uniecg_edge.cli import main

UNDERSTANDING = ("ecg_encoder", "embed_tokens", "decoder")
FAST = ["--repeats", "2", "--warmup", "1", "--windows", "1", "--threads", "1", "--quiet"]
ROW_KEYS = {"backend", "precision", "stage", "p50_ms", "p95_ms", "p99_ms"}


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The default model's understanding graphs at int8 (no generation graphs: those stages must fail cleanly)."""
    from uniecg_edge.export import ExportOptions, export_bundle

    out = tmp_path_factory.mktemp("bench-int8") / "bundle"
    export_bundle(out, options=ExportOptions(precision="int8", graphs=UNDERSTANDING))
    return out


def bench(*args: str) -> Result:
    return CliRunner().invoke(main, ["bench", *args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return errors[0]


def combo(result: dict[str, Any], backend: str, precision: str) -> dict[str, Any]:
    return next(c for c in result["combinations"] if (c["backend"], c["precision"]) == (backend, precision))


def test_bench_times_torch_and_onnxruntime_and_skips_what_cannot_run(int8_bundle: Path, tmp_path: Path) -> None:
    stages = "ecg_encoder,prefill,decode_token,time_to_first_token,full_report,generation_step"
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    result = bench("--bundle", str(int8_bundle), "--backends", "torch,onnxruntime,tensorrt", "--precisions",
                   "fp32,int8", "--stages", stages, "--device-profile", "orin-nano", "--json", str(out_json),
                   "--markdown", str(out_md), *FAST)
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(out_json.read_text())
    assert data["format"] == "uniecg-edge-bench"
    machine = data["machine"]
    assert machine["cpu"]["model"] and {"torch", "onnxruntime", "tensorrt"} <= set(machine["versions"])

    ok = {(c["backend"], c["precision"]) for c in data["combinations"] if c["status"] == "ok"}
    assert ok == {("torch", "fp32"), ("onnxruntime", "int8")}
    assert "fp32 only" in combo(data, "torch", "int8")["reason"]
    assert "no fp32 bundle" in combo(data, "onnxruntime", "fp32")["reason"]
    for precision in ("fp32", "int8"):  # not installed here; on a GPU machine: no engines in the bundle
        trt = combo(data, "tensorrt", precision)
        assert trt["status"] == "skipped" and len(trt["reason"]) > 10

    rows = data["rows"]
    assert all(ROW_KEYS <= set(r) for r in rows)
    assert all(r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] for r in rows)
    decode = [r for r in rows if r["stage"] == "decode_token"]
    assert {(r["backend"], r["precision"]) for r in decode} == ok
    for r in decode:
        assert r["tokens_per_s"] == pytest.approx(1e3 / r["p50_ms"])
    # the bundle has no generation graphs: that stage fails on onnxruntime (named), the others still ran
    ort = combo(data, "onnxruntime", "int8")
    assert "generation_step" in ort["stage_errors"]
    assert {r["stage"] for r in rows if r["backend"] == "onnxruntime"} == set(stages.split(",")) - {"generation_step"}
    assert {r["stage"] for r in rows if r["backend"] == "torch"} == set(stages.split(","))
    # ceiling from the Orin Nano profile: 68 GB/s over the decoder's bytes per token
    ceiling = ort["ceiling"]
    assert "orin-nano" in ceiling["bandwidth_source"]
    assert ceiling["ceiling_tokens_per_s"] == pytest.approx(68e9 / ceiling["bytes_per_token"])
    assert ort["ceiling_fraction"] == pytest.approx(ort["decode_tokens_per_s"] / ceiling["ceiling_tokens_per_s"])
    assert ort["model_bytes"] > 0 and ort["peak_rss_mb"] > 0
    speedup = data["comparisons"]["decode_speedup_onnxruntime_int8_vs_torch_fp32"]
    assert speedup["target"] == 2.0
    assert speedup["value"] == pytest.approx(ort["decode_tokens_per_s"] / combo(data, "torch", "fp32")[
        "decode_tokens_per_s"])

    text = out_md.read_text()
    assert text == result.output
    assert "| stage: p50 / p95 / p99 ms | torch fp32 | onnxruntime int8 |" in text
    assert "| decode per token |" in text and "tensorrt int8: skipped" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--backends", "torch,cuda-magic"], "unknown backend 'cuda-magic' (known: onnxruntime, tensorrt, torch)"),
    (["--precisions", "fp32,int3"], "unknown precision 'int3' (known: fp32, fp16, int8, int4)"),
    (["--device-profile", "orin-mega"], "unknown device profile 'orin-mega'"),
    (["--stages", "warp_drive"], "unknown stage 'warp_drive'"),
    (["--scale", "--scale-decoders", "gpt-9"], "unknown scale decoder 'gpt-9'"),
    (["--scale-steps", "0,5"], "--scale-steps: steps must be within 1..1000"),
    (["--bundle", "/nonexistent/bundle"], "/nonexistent/bundle: no such bundle folder"),
    (["--json", "/nonexistent/dir/out.json"], "/nonexistent/dir: folder does not exist"),
])
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    assert message in one_line_error(bench(*args, *FAST))


def test_a_tampered_bundle_is_refused_in_one_line(int8_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(int8_bundle, copy)
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")  # one byte more
    error = one_line_error(bench("--bundle", str(copy), *FAST))
    assert "config.json does not match the manifest" in error


def test_scale_on_the_default_decoder(tmp_path: Path) -> None:
    out_json = tmp_path / "scale.json"
    result = bench("--scale", "--scale-decoders", "default", "--backends", "torch,onnxruntime,tensorrt",
                   "--precisions", "fp32,int8", "--scale-steps", "none", "--device-profile", "agx-orin",
                   "--json", str(out_json), *FAST)
    assert result.exit_code == 0, result.output + result.stderr
    scale = json.loads(out_json.read_text())["scale"]
    sizes = {(r["backend"], r["precision"]) for r in scale["model_size"]}
    assert sizes == {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    by = {(r["backend"], r["precision"]): r for r in scale["model_size"]}
    assert by["onnxruntime", "int8"]["weight_bytes"] < 0.5 * by["onnxruntime", "fp32"]["weight_bytes"]
    for row in scale["model_size"] + scale["context"] + scale["batch"]:
        assert ROW_KEYS <= set(row) and row["tokens_per_s"] > 0
        # each of the batch's sequences reads its own KV cache on top of its share of the weights
        assert row["bytes_per_token"] > row["weight_bytes"] / row["batch"]
        assert row["ceiling_tokens_per_s"] == pytest.approx(204.8e9 / row["bytes_per_token"])
    assert sorted({r["context"] for r in scale["context"]}) == scale["contexts"]
    assert sorted({r["batch"] for r in scale["batch"]}) == scale["batches"]
    assert any(note.startswith("tensorrt:") for note in scale["skipped"])
    assert "### Decode vs model size" in result.output and "### Decode vs batch" in result.output


@pytest.mark.slow
def test_bench_without_arguments_exports_and_times_fp32_and_int8(tmp_path: Path) -> None:
    """The command as a field tester runs it: the default model exported at fp32 and int8 (about a minute on two
    cores), every backend present, every stage."""
    out_json = tmp_path / "bench.json"
    result = bench("--json", str(out_json), "--repeats", "3", "--warmup", "1")
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(out_json.read_text())
    ok = {(c["backend"], c["precision"]) for c in data["combinations"] if c["status"] == "ok"}
    assert {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")} <= ok
    from uniecg_edge.bench.stages import STAGE_LABELS

    for backend, precision in ok:
        stages = {r["stage"] for r in data["rows"] if (r["backend"], r["precision"]) == (backend, precision)}
        assert stages == set(STAGE_LABELS) - {"preprocess_dsp"}, (backend, precision)
        assert combo(data, backend, precision)["real_time_factor"] > 0
    assert data["bandwidth"]["source"] == "measured" and data["bandwidth"]["gb_per_s"] > 0
    print(json.dumps(data["comparisons"], indent=1))


@pytest.mark.slow
def test_scale_reaches_the_half_billion_int4_decoder(tmp_path: Path) -> None:
    """Qwen2-0.5B's shape at int4 (export and quantization take minutes and ~5 GB the first time)."""
    out_json = tmp_path / "scale.json"
    result = bench("--scale", "--scale-decoders", "qwen2-0.5b", "--backends", "onnxruntime", "--precisions", "int4",
                   "--scale-steps", "none", "--json", str(out_json), "--repeats", "10", "--warmup", "2")
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(out_json.read_text())
    (row,) = data["scale"]["model_size"]
    assert row["params"] >= 490_000_000 and row["weight_bytes"] < 0.2 * 4 * row["params"]  # 4-bit blocks + scales
    item = data["comparisons"]["ceiling_fraction_qwen2-0.5b_onnxruntime_int4"]
    assert item["value"] == pytest.approx(row["ceiling_fraction"]) and item["target"] == 0.5
    print(item["label"], item["value"])
