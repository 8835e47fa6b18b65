"""Quality gates on real check records: a faithful quantization of the default model passes, a broken one fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from uniecg_edge.errors import ConfigError, InputError  # noqa: E402
from uniecg_edge.export.calibration import CHECK_RECORDS  # noqa: E402
from uniecg_edge.export.gates import (  # noqa: E402
    GATE_THRESHOLDS,
    cosine,
    gates_passed,
    run_gates,
    statements,
    top1_agreement,
)
from uniecg_edge.export.quantize import quantize_graph  # noqa: E402

# The unet graphs take ~25 s to export: the fast tests leave them out (their gate is then not reported);
# the slow test exports everything.
FAST_GRAPHS = ("ecg_encoder", "embed_tokens", "decoder", "gen_head", "vae_decoder")


def _fp32_bundle(folder: Path, graphs) -> Path:
    from uniecg_edge.export.onnx_export import export_graph
    from uniecg_edge.export.runtime_config import build_runtime_config
    from uniecg_edge.export.spec import graph_specs
    from uniecg_edge.model.default import default_model_dir
    from uniecg_edge.model.schedulers import save_scheduler_config
    from uniecg_edge.model.uniecg import UniEcgModel

    model = UniEcgModel.from_pretrained(default_model_dir())
    for spec in graph_specs(graphs):
        export_graph(spec, model, folder)
    (folder / "config.json").write_text(json.dumps(build_runtime_config(model)))
    model.tokenizer.save_pretrained(str(folder / "tokenizer"))
    save_scheduler_config(model.scheduler, folder / "scheduler.json")
    return folder


def _quantized(fp32: Path, folder: Path, precision: str) -> Path:
    folder.mkdir()
    shutil.copy(fp32 / "config.json", folder)
    shutil.copy(fp32 / "scheduler.json", folder)
    shutil.copytree(fp32 / "tokenizer", folder / "tokenizer")
    for graph in sorted(fp32.glob("*.onnx")):
        quantize_graph(graph.stem, graph, folder / graph.name, precision)
    return folder


def _zero_weights(path: Path, op_type: str, input_index: int) -> int:
    """Zero the constant weight input of every ``op_type`` node: a deliberately broken graph."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    names = {n.input[input_index] for n in model.graph.node if n.op_type == op_type and n.input[input_index] in inits}
    for name in names:
        inits[name].CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(inits[name])), name))
    onnx.save(model, str(path))
    return len(names)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gates")
    fp32 = _fp32_bundle(root / "fp32", FAST_GRAPHS)
    return {"fp32": fp32, "int8": _quantized(fp32, root / "int8", "int8")}


@pytest.fixture(scope="module")
def check_records(shared_ecg) -> list[Path]:
    return [shared_ecg / "cinc2021" / f"{name}.hea" for name in CHECK_RECORDS]


def test_faithful_int8_passes_every_gate(bundles, check_records):
    gates = run_gates(bundles["fp32"], bundles["int8"], check_records, precision="int8")
    assert set(gates) == {"top1_agreement", "ecg_token_cosine", "cond_cosine", "vae_cosine", "statements_match"}
    for name, gate in gates.items():
        if name != "statements_match":
            assert gate["passed"] is True, (name, gate)
            assert gate["threshold"] == GATE_THRESHOLDS["int8"][name]
            assert gate["threshold"] <= gate["value"] <= 1.0 + 1e-9
    # the default model is untrained: its text is noise, so the statements gate is reported but not applied
    assert gates["statements_match"]["applies"] is False and gates["statements_match"]["passed"] is None
    assert gates_passed(gates)
    json.dumps(gates)  # goes into the manifest as it is


def test_zeroed_decoder_weights_fail(bundles, check_records, tmp_path):
    broken = shutil.copytree(bundles["int8"], tmp_path / "broken")
    assert _zero_weights(broken / "decoder.onnx", "MatMulInteger", 1) > 0
    gates = run_gates(bundles["fp32"], broken, check_records, precision="int8")
    assert not gates_passed(gates)
    assert gates["top1_agreement"]["passed"] is False
    assert gates["ecg_token_cosine"]["passed"] is False
    assert gates["vae_cosine"]["passed"] is True  # the VAE was left alone: gates name what broke


def test_zeroed_vae_weights_fail(bundles, check_records, tmp_path):
    broken = shutil.copytree(bundles["int8"], tmp_path / "broken")
    assert _zero_weights(broken / "vae_decoder.onnx", "Conv", 1) > 0
    gates = run_gates(bundles["fp32"], broken, check_records, precision="int8")
    assert gates["vae_cosine"]["passed"] is False
    assert gates["top1_agreement"]["passed"] is True


def test_precision_comes_from_the_manifest(bundles, check_records, tmp_path):
    quant = shutil.copytree(bundles["int8"], tmp_path / "q")
    with pytest.raises(ConfigError, match="pass precision="):
        run_gates(bundles["fp32"], quant, check_records[:1])
    (quant / "manifest.json").write_text(json.dumps({"precision": "int8"}))
    gates = run_gates(bundles["fp32"], quant, check_records[:1])
    assert gates["cond_cosine"]["threshold"] == GATE_THRESHOLDS["int8"]["cond_cosine"]
    with pytest.raises(ConfigError, match="unknown precision"):
        run_gates(bundles["fp32"], quant, check_records[:1], precision="int3")
    with pytest.raises(InputError, match="at least one check record"):
        run_gates(bundles["fp32"], quant, [], precision="int8")
    with pytest.raises(InputError, match="config.json missing"):
        run_gates(bundles["fp32"], tmp_path, check_records[:1], precision="int8")


def test_top1_agreement_counts_near_ties():
    ref = np.array([[2.0, 1.95, 0.0], [3.0, 0.0, 1.0], [0.0, 5.0, 4.0]])
    cand = np.array([[1.9, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 5.0, 4.0]])
    tied, strict = top1_agreement(ref, cand, tie_nats=0.1)
    assert strict == pytest.approx(1 / 3)  # only the last row picks the same token
    assert tied == pytest.approx(2 / 3)  # the first row's choice is 0.05 below the best: a tie; the second is not
    assert top1_agreement(ref, np.full_like(cand, np.nan)) == (0.0, 0.0)


def test_cosine_and_statements():
    a = np.array([1.0, 2.0, 3.0])
    assert cosine(a, 2 * a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0 and cosine(a, np.zeros(3)) == 0.0
    assert np.isnan(cosine(a, np.array([np.inf, 0, 0])))
    text = "The ECG shows sinus tachycardia with a rate of 120 bpm. Impression: left axis deviation."
    assert statements(text) == {"sinus tachycardia", "left axis deviation"}
    assert statements("Atrial fibrillation; no sinus rhythm claimed? sinus rhythm") >= {"atrial fibrillation"}
    assert statements("") == frozenset()


@pytest.fixture(scope="module")
def full_fp32(tmp_path_factory) -> Path:
    return _fp32_bundle(tmp_path_factory.mktemp("full") / "fp32", None)


@pytest.mark.slow  # exports all seven graphs (~55 s) and gates three precisions (~10 s)
@pytest.mark.parametrize("precision", ["fp16", "int8", "int4"])
def test_every_precision_passes_on_the_full_default_bundle(full_fp32, check_records, precision, tmp_path):
    quant = _quantized(full_fp32, tmp_path / precision, precision)
    gates = run_gates(full_fp32, quant, check_records, precision=precision)
    assert {"unet_noise_cosine", "generated_ecg_cosine"} <= set(gates)
    assert gates_passed(gates), gates
