"""quantize_graph on small graphs exported here with torch.onnx.export(dynamo=True, opset 18): an MLP, a small
Llama decoder with a KV cache, a token table and an ECG-shaped conv model calibrated on real records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from uniecg_edge.errors import ConfigError, InputError  # noqa: E402
from uniecg_edge.export.quantize import (  # noqa: E402
    PRECISIONS,
    TOLERANCES,
    graph_size_bytes,
    quantize_graph,
    relative_max_error,
)

HIDDEN, LAYERS, KV_HEADS, HEAD_DIM = 128, 2, 2, 32


def _export(module, args, path: Path, input_names, output_names, dynamic_shapes, external=False) -> Path:
    torch.onnx.export(module.eval(), args, str(path), dynamo=True, opset_version=18, input_names=input_names,
                      output_names=output_names, dynamic_shapes=dynamic_shapes, external_data=external)
    return path


def _run(path: Path, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    """fp32 graphs: ``mlp`` (1 MB of weights, one file), ``decoder`` (external data) and ``embed_tokens``."""
    from transformers import DynamicCache

    from uniecg_edge.model.llm import build_llm, tiny_llama

    folder = tmp_path_factory.mktemp("fp32")
    torch.manual_seed(0)
    batch = torch.export.Dim("batch", max=64)
    mlp = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.LayerNorm(512),
                              torch.nn.Linear(512, 256))
    out = {"mlp": _export(mlp, (torch.randn(2, 256),), folder / "mlp.onnx", ["x"], ["y"], {"input": {0: batch}})}

    cfg = tiny_llama(vocab_size=512)
    cfg.update(hidden_size=HIDDEN, intermediate_size=344, num_hidden_layers=LAYERS,
               num_attention_heads=HIDDEN // HEAD_DIM, num_key_value_heads=KV_HEADS)
    llm = build_llm(cfg)

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = llm

        def forward(self, inputs_embeds, attention_mask, position_ids, *past):
            cache = DynamicCache()
            for i in range(LAYERS):
                cache.update(past[2 * i], past[2 * i + 1], i)
            o = self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, output_hidden_states=True)
            flat = [t for layer in o.past_key_values.layers for t in (layer.keys, layer.values)]
            return (o.logits, o.hidden_states[-1], *flat)

    seq, past = torch.export.Dim("seq", max=2048), torch.export.Dim("past", max=2048)
    past_names = [f"past_key_values.{i}.{k}" for i in range(LAYERS) for k in ("key", "value")]
    args = (torch.randn(2, 5, HIDDEN), torch.ones(2, 8, dtype=torch.long), torch.arange(3, 8).expand(2, 5),
            *[torch.randn(2, KV_HEADS, 3, HEAD_DIM) for _ in past_names])
    shapes = {"inputs_embeds": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: torch.export.Dim.AUTO},
              "position_ids": {0: batch, 1: seq}, "past": tuple({0: batch, 2: past} for _ in past_names)}
    out["decoder"] = _export(
        Decoder(), args, folder / "decoder.onnx", ["inputs_embeds", "attention_mask", "position_ids", *past_names],
        ["logits", "hidden_states", *[n.replace("past_key_values", "present") for n in past_names]], shapes,
        external=True)

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = llm.get_input_embeddings()

        def forward(self, input_ids):
            return self.table(input_ids)

    out["embed_tokens"] = _export(Embed(), (torch.zeros(2, 5, dtype=torch.long),), folder / "embed_tokens.onnx",
                                  ["input_ids"], ["inputs_embeds"], {"input_ids": {0: batch, 1: seq}})
    return out


def decoder_feeds(past: int, seq: int, start: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {"inputs_embeds": rng.standard_normal((1, seq, HIDDEN)).astype(np.float32),
             "attention_mask": np.ones((1, past + seq), np.int64),
             "position_ids": np.arange(start + past, start + past + seq, dtype=np.int64)[None]}
    for i in range(LAYERS):
        for kind in ("key", "value"):
            shape = (1, KV_HEADS, past, HEAD_DIM)
            feeds[f"past_key_values.{i}.{kind}"] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def mlp_feeds(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((3, 256)).astype(np.float32)}


def _error(src: Path, dst: Path, feeds: dict) -> float:
    return relative_max_error(_run(src, feeds), _run(dst, feeds))


# ---- every precision ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_runs_and_stays_within_tolerance(graphs, tmp_path, precision):
    for name, feeds in (("decoder", decoder_feeds(3, 4)), ("mlp", mlp_feeds())):
        dst = tmp_path / f"{name}.onnx"
        facts = quantize_graph(name, graphs[name], dst, precision)
        assert facts["precision"] == precision
        assert facts["size_bytes"] == graph_size_bytes(dst) > 0
        assert {"method", "ops", "excluded"} <= set(facts)
        tolerance = TOLERANCES[precision].get(name, TOLERANCES[precision]["gen_head"])
        assert _error(graphs[name], dst, feeds) <= tolerance, (name, precision)
        onnx.checker.check_model(str(dst))


def test_fp32_is_the_graph_as_exported_under_the_new_name(graphs, tmp_path):
    dst = tmp_path / "renamed.onnx"
    quantize_graph("decoder", graphs["decoder"], dst, "fp32")
    assert (tmp_path / "renamed.onnx.data").is_file()
    feeds = decoder_feeds(0, 6)
    for a, b in zip(_run(graphs["decoder"], feeds), _run(dst, feeds), strict=True):
        np.testing.assert_array_equal(a, b)


def test_external_data_is_written_beside_the_graph_whatever_the_working_directory(graphs, tmp_path, monkeypatch):
    """onnx's save_as_external_data refuses when the data file's name exists in the current directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "decoder.onnx.data").write_bytes(b"someone else's file")
    out = tmp_path / "bundle"
    out.mkdir()
    quantize_graph("decoder", graphs["decoder"], out / "decoder.onnx", "int8")
    assert (tmp_path / "decoder.onnx.data").read_bytes() == b"someone else's file"
    assert (out / "decoder.onnx.data").stat().st_size > 0
    assert _error(graphs["decoder"], out / "decoder.onnx", decoder_feeds(1, 2)) <= TOLERANCES["int8"]["decoder"]


# ---- fp16 -----------------------------------------------------------------------------------------------------------
def test_fp16_halves_weights_keeps_fp32_io_and_int64_inputs(graphs, tmp_path):
    dst = tmp_path / "mlp16.onnx"
    facts = quantize_graph("mlp", graphs["mlp"], dst, "fp16")
    ratio = facts["size_bytes"] / graph_size_bytes(graphs["mlp"])
    assert 0.4 < ratio < 0.6
    model = onnx.load(str(dst))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
               for v in list(model.graph.input) + list(model.graph.output))
    assert "op LayerNormalization" in facts["excluded"]

    dec = tmp_path / "dec16.onnx"
    quantize_graph("decoder", graphs["decoder"], dec, "fp16")
    types = {v.name: v.type.tensor_type.elem_type for v in onnx.load(str(dec), load_external_data=False).graph.input}
    assert types["attention_mask"] == types["position_ids"] == onnx.TensorProto.INT64
    assert types["inputs_embeds"] == onnx.TensorProto.FLOAT


def test_fp16_rotary_phase_stays_fp32_at_far_positions(graphs, tmp_path):
    """fp16 positions x inverse frequencies would be off by ~1 rad at position 1500 (errors ~1e-2 here)."""
    dst = tmp_path / "dec16.onnx"
    quantize_graph("decoder", graphs["decoder"], dst, "fp16")
    near = _error(graphs["decoder"], dst, decoder_feeds(2, 3, start=0))
    far = _error(graphs["decoder"], dst, decoder_feeds(2, 3, start=1500))
    assert far < 2e-3
    assert far < 3 * near + 1e-4


def test_fp16_outputs_are_finite_on_large_activations(graphs, tmp_path):
    """Norm statistics stay fp32: x**2 of |x| ~ 400 overflows fp16 (65504) but not the blocked Pow/ReduceMean."""
    dst = tmp_path / "dec16.onnx"
    quantize_graph("decoder", graphs["decoder"], dst, "fp16")
    feeds = decoder_feeds(0, 4)
    feeds["inputs_embeds"] *= 400.0
    outputs = _run(dst, feeds)
    assert all(np.isfinite(o).all() for o in outputs)
    assert relative_max_error(_run(graphs["decoder"], feeds), outputs) <= TOLERANCES["fp16"]["decoder"]


# ---- int8 -----------------------------------------------------------------------------------------------------------
def test_int8_dynamic_uses_integer_matmuls_and_shrinks(graphs, tmp_path):
    dst = tmp_path / "mlp8.onnx"
    facts = quantize_graph("mlp", graphs["mlp"], dst, "int8")
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= _ops(dst)
    assert facts["method"].startswith("int8 dynamic")
    assert facts["quantized_nodes"] >= 2
    assert 0.2 < facts["size_bytes"] / graph_size_bytes(graphs["mlp"]) < 0.5


def test_int8_dynamic_leaves_attention_products_and_down_projections_float(graphs, tmp_path):
    from uniecg_edge.export.quantize import gated_product_matmuls

    dst = tmp_path / "dec8.onnx"
    facts = quantize_graph("decoder", graphs["decoder"], dst, "int8")
    nodes = onnx.load(str(dst), load_external_data=False).graph.node
    integer = sum(n.op_type == "MatMulInteger" for n in nodes)
    assert integer == LAYERS * 7  # q, k, v, o, gate, up, down per layer + lm_head, less the first down-projection
    assert any(n.op_type == "MatMul" for n in nodes)  # scores and attention x values
    # the SwiGLU down-projection reads silu(gate) * up, a product of two activations: one per layer, in layer order;
    # the decoder keeps the first layer's fp32 (its outliers), the others are quantized
    src = onnx.load(str(graphs["decoder"]), load_external_data=False).graph
    down = gated_product_matmuls(src)
    assert len(down) == LAYERS and facts["float_nodes"] == down[:1]
    float_matmuls = {n.name for n in nodes if n.op_type == "MatMul"}
    assert down[0] in float_matmuls and not set(down[1:]) & float_matmuls
    # a norm's weight * x feeds q, k, v, gate and up: not an activation product
    mlp = onnx.load(str(graphs["mlp"]), load_external_data=False).graph
    assert gated_product_matmuls(mlp) == []


def test_int8_static_leaves_attention_products_float(graphs, tmp_path):
    """QDQ on activation x activation MatMuls would round attention probabilities to multiples of 1/127."""
    dst = tmp_path / "dec8s.onnx"
    calibration = [decoder_feeds(past, 6, seed=seed) for seed, past in enumerate((0, 3, 8))]
    facts = quantize_graph("decoder", graphs["decoder"], dst, "int8", calibration=calibration)
    assert facts["method"].startswith("int8 static QDQ")
    model = onnx.load(str(dst), load_external_data=False)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    inits = {t.name for t in model.graph.initializer}
    quantized = [n for n in model.graph.node
                 if n.op_type == "MatMul" and producers.get(n.input[0]) == "DequantizeLinear"]
    assert len(quantized) == LAYERS * 7 + 1
    assert all(n.input[1] in inits or producers.get(n.input[1]) == "DequantizeLinear" for n in quantized)
    activation_products = [n for n in model.graph.node if n.op_type == "MatMul" and n not in quantized]
    assert activation_products and all(producers.get(i) != "DequantizeLinear"
                                       for n in activation_products for i in n.input)
    assert _error(graphs["decoder"], dst, decoder_feeds(4, 3, seed=9)) <= TOLERANCES["int8"]["decoder"]


def test_int8_static_keeps_once_per_request_graphs_fp32(graphs, tmp_path):
    dst = tmp_path / "head.onnx"
    facts = quantize_graph("gen_head", graphs["mlp"], dst, "int8", calibration=[mlp_feeds()])
    assert facts["method"].startswith("fp32") and "once per request" in facts["note"]
    assert "QuantizeLinear" not in _ops(dst)
    np.testing.assert_array_equal(_run(graphs["mlp"], mlp_feeds())[0], _run(dst, mlp_feeds())[0])


def test_int8_token_table_is_quantized(graphs, tmp_path):
    dst = tmp_path / "embed8.onnx"
    facts = quantize_graph("embed_tokens", graphs["embed_tokens"], dst, "int8")
    assert facts["size_bytes"] < 0.5 * graph_size_bytes(graphs["embed_tokens"])
    ids = {"input_ids": np.array([[1, 7, 300, 511]], np.int64)}
    assert _error(graphs["embed_tokens"], dst, ids) <= TOLERANCES["int8"]["embed_tokens"]


# ---- int4 -----------------------------------------------------------------------------------------------------------
def test_int4_decoder_uses_matmulnbits_smaller_than_int8(graphs, tmp_path):
    q4, q8 = tmp_path / "dec4.onnx", tmp_path / "dec8.onnx"
    facts = quantize_graph("decoder", graphs["decoder"], q4, "int4")
    quantize_graph("decoder", graphs["decoder"], q8, "int8")
    assert "MatMulNBits" in _ops(q4)
    assert facts["ops"] == [f"MatMulNBits x{LAYERS * 7 + 1}"]
    assert facts["opset"] == 18
    weights = {p: (p.parent / (p.name + ".data")).stat().st_size for p in (q4, q8, graphs["decoder"])}
    assert weights[q4] < 0.3 * weights[graphs["decoder"]]
    assert weights[q4] < weights[q8] < 0.45 * weights[graphs["decoder"]]  # int8 keeps the down-projections fp32
    for feeds in (decoder_feeds(0, 6), decoder_feeds(5, 1, seed=3)):
        assert _error(graphs["decoder"], q4, feeds) <= TOLERANCES["int4"]["decoder"]


def test_int4_token_table_is_block_quantized(graphs, tmp_path):
    dst = tmp_path / "embed4.onnx"
    facts = quantize_graph("embed_tokens", graphs["embed_tokens"], dst, "int4")
    ids = {"input_ids": np.array([[0, 5, 511, 42]], np.int64)}
    assert _error(graphs["embed_tokens"], dst, ids) <= TOLERANCES["int4"]["embed_tokens"]
    if "GatherBlockQuantized" in _ops(dst):
        assert facts["size_bytes"] < 0.25 * graph_size_bytes(graphs["embed_tokens"])
    else:  # onnxruntime could not run it: int8 instead, and the facts say so
        assert "int8" in facts["method"]


def test_int4_other_graphs_get_int8_dynamic_and_say_so(graphs, tmp_path):
    dst = tmp_path / "mlp4.onnx"
    facts = quantize_graph("gen_head", graphs["mlp"], dst, "int4")
    assert "MatMulInteger" in _ops(dst) and "MatMulNBits" not in _ops(dst)
    assert "int8 dynamic" in facts["method"] and "int8" in facts["note"]


# ---- refusals -------------------------------------------------------------------------------------------------------
def test_refusals(graphs, tmp_path):
    with pytest.raises(ConfigError, match="unknown precision 'int3'"):
        quantize_graph("mlp", graphs["mlp"], tmp_path / "x.onnx", "int3")
    with pytest.raises(InputError, match="no such ONNX graph"):
        quantize_graph("mlp", tmp_path / "absent.onnx", tmp_path / "x.onnx", "int8")
    with pytest.raises(InputError, match="must not overwrite"):
        quantize_graph("mlp", graphs["mlp"], graphs["mlp"], "int8")
    with pytest.raises(InputError, match="lacks input x"):
        quantize_graph("mlp", graphs["mlp"], tmp_path / "x.onnx", "int8", calibration=[{"y": np.zeros(3)}])
    with pytest.raises(InputError, match="holds no sample"):
        quantize_graph("mlp", graphs["mlp"], tmp_path / "x.onnx", "int8", calibration=[])


def test_relative_max_error():
    ref = np.array([1.0, -4.0, 2.0])
    assert relative_max_error(ref, ref) == 0.0
    assert relative_max_error(ref, ref + np.array([0.0, 0.4, 0.0])) == pytest.approx(0.1)
    assert relative_max_error([ref, np.zeros(2)], [ref, np.array([0.0, 0.8])]) == pytest.approx(0.2)
    assert relative_max_error(ref, np.array([1.0, np.nan, 2.0])) == float("inf")
    with pytest.raises(ValueError):
        relative_max_error(ref, ref[:2])
