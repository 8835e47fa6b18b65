"""The bandwidth ceiling: bytes per token per precision, KV-cache reads, the Jetson table, weight bytes of graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.bench.ceiling import (
    DEVICE_PROFILES,
    decoder_ceiling,
    kv_cache_bytes,
    onnx_weight_bytes,
    torch_weight_bytes,
    weight_bytes_per_token,
)
from uniecg_edge.errors import ConfigError


@pytest.mark.parametrize(("profile", "params", "precision", "published"), [
    # edge-facts §8: tokens/s <= bandwidth / (params x bytes per weight), rounded as published there
    ("agx-orin", 8e9, "fp16", 13), ("agx-orin", 8e9, "int8", 26), ("agx-orin", 8e9, "int4", 51),
    ("orin-nx", 3e9, "int8", 34), ("orin-nano", 3e9, "fp16", 11), ("orin-nano", 8e9, "int4", 17),
    ("orin-nano-super", 1e9, "int4", 204), ("thor", 1e9, "int8", 273), ("thor", 8e9, "int4", 68),
])
def test_device_table_reproduces_the_published_ceilings(profile: str, params: float, precision: str,
                                                        published: float) -> None:
    bandwidth = DEVICE_PROFILES.get(profile).bandwidth_gb_s
    ceiling = decoder_ceiling(int(weight_bytes_per_token(params, precision)), 0, bandwidth, bandwidth_source=profile)
    assert ceiling.tokens_per_s == pytest.approx(published, abs=1.0)


def test_unknown_device_profile_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown device profile 'orin-mega'.*agx-orin"):
        DEVICE_PROFILES.get("orin-mega")


def test_int4_block_scales_add_to_the_bytes() -> None:
    assert weight_bytes_per_token(1000, "int4") == 500
    assert weight_bytes_per_token(1000, "int4", block_size=32) == pytest.approx(625)  # 0.5 + 4 / 32
    assert weight_bytes_per_token(1000, "fp32") == 4000
    with pytest.raises(ValueError):
        weight_bytes_per_token(1, "int3")


def test_kv_cache_reads_and_batch() -> None:
    # Llama-3.1-8B: 32 layers, 8 KV heads of 128, fp16: 128 KiB per position (edge-facts §8)
    assert kv_cache_bytes(32, 8, 128, 1, dtype_bytes=2) == 128 * 1024
    kv = kv_cache_bytes(32, 8, 128, 1024, dtype_bytes=2)
    one = decoder_ceiling(4_000_000_000, kv, 204.8)
    assert one.bytes_per_token == 4_000_000_000 + 128 * 2**20
    four = decoder_ceiling(4_000_000_000, kv, 204.8, batch=4)
    # four sequences share one read of the weights but each reads its own cache
    assert four.bytes_per_step == 4_000_000_000 + 4 * kv
    assert four.tokens_per_s == pytest.approx(4 * 204.8e9 / four.bytes_per_step)
    assert four.tokens_per_s > 3 * one.tokens_per_s
    assert one.fraction(one.tokens_per_s / 2) == pytest.approx(0.5)
    assert one.to_dict()["ceiling_tokens_per_s"] == pytest.approx(one.tokens_per_s)


def _graph_with_table_and_weight(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    table = numpy_helper.from_array(np.ones((10, 4), np.float32), "T")
    packed = numpy_helper.from_array(np.ones((6,), np.int8), "Q")
    scale = numpy_helper.from_array(np.ones((), np.float32), "S")
    nodes = [
        helper.make_node("Gather", ["T", "ids"], ["rows"]),
        helper.make_node("MatMul", ["rows", "W"], ["y"]),
        helper.make_node("DequantizeLinear", ["Q", "S"], ["q"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3]),
         helper.make_tensor_value_info("q", TensorProto.FLOAT, [6])],
        initializer=[weight, table, packed, scale])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_onnx_weight_bytes_counts_stored_sizes_and_one_table_row(tmp_path: Path) -> None:
    path = tmp_path / "g.onnx"
    _graph_with_table_and_weight(path)
    # W: 12 floats (48 B); T: only one row of 4 floats is read (16 B); Q: 6 int8 (6 B); S: one float (4 B)
    assert onnx_weight_bytes(path) == 48 + 16 + 6 + 4


def test_torch_weight_bytes_reads_the_table_only_when_it_is_the_output_projection() -> None:
    import torch

    from uniecg_edge.model.llm import build_llm, tiny_llama, tiny_qwen2

    torch.manual_seed(0)
    untied = build_llm(tiny_llama(256))
    total = sum(p.numel() * 4 for p in untied.parameters())
    table = untied.get_input_embeddings().weight
    assert torch_weight_bytes(untied) == total - table.numel() * 4 + table.shape[1] * 4
    tied = build_llm(tiny_qwen2(256))
    assert torch_weight_bytes(tied) == sum(p.numel() * 4 for p in tied.parameters())  # shared table counted once


def test_ceiling_verdicts_use_the_higher_bandwidth_probe() -> None:
    from uniecg_edge.bench.ceiling import judge_at_highest_bandwidth

    comparisons = {
        "ceiling_fraction_qwen2-0.5b_onnxruntime_int4": {"label": "int4 decode", "value": 0.6, "target": 0.5,
                                                         "passed": True, "unit": "fraction"},
        "decode_speedup_int8": {"label": "int8 vs fp32", "value": 3.0, "target": 2.0, "passed": True},
    }
    judged = judge_at_highest_bandwidth(comparisons, 45.0, 90.0)
    item = judged["ceiling_fraction_qwen2-0.5b_onnxruntime_int4"]
    assert item["value"] == pytest.approx(0.3) and item["passed"] is False
    assert item["value_at_start_bandwidth"] == 0.6 and item["bandwidth_gb_s"] == 90.0 and "90.0 GB/s" in item["label"]
    assert judged["decode_speedup_int8"] == comparisons["decode_speedup_int8"]  # not a ceiling: untouched
    # a lower (or missing) end probe leaves the verdict on the start probe
    assert judge_at_highest_bandwidth(comparisons, 45.0, 40.0) is comparisons
    assert judge_at_highest_bandwidth(comparisons, 45.0, None) is comparisons
