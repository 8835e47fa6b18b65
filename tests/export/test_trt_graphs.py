"""Graph facts for build-engines: the quantization kind of real ONNX files, incl. what onnxruntime writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.errors import InputError
from uniecg_edge.export.trt.graphs import BundleGraph, bundle_graphs, graph_precision, onnx_op_types, quantization_kind

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _matmul_model(path: Path) -> Path:
    weight = numpy_helper.from_array(np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_kinds_from_op_pairs() -> None:
    assert quantization_kind([("", "MatMul"), ("", "Add")]) == "none"
    assert quantization_kind([("", "QuantizeLinear"), ("", "DequantizeLinear"), ("", "MatMul")]) == "qdq"
    assert quantization_kind([("", "DynamicQuantizeLinear"), ("", "MatMulInteger")]) == "dynamic"
    assert quantization_kind([("com.microsoft", "MatMulNBits"), ("", "DequantizeLinear")]) == "weight-only"
    assert quantization_kind([("com.microsoft", "FusedMatMul")]) == "contrib"
    assert quantization_kind([("com.microsoft", "QuantizeLinear"), ("com.microsoft", "DequantizeLinear")]) == \
        "contrib"  # the contrib Q/DQ (int16 / int4 activations) is not TensorRT's


def test_onnxruntime_dynamic_quantization_is_detected(tmp_path: Path) -> None:
    quantization = pytest.importorskip("onnxruntime.quantization")
    src = _matmul_model(tmp_path / "fp32.onnx")
    dst = tmp_path / "int8.onnx"
    quantization.quantize_dynamic(str(src), str(dst), weight_type=quantization.QuantType.QInt8,
                                  op_types_to_quantize=["MatMul"])
    ops = onnx_op_types(dst)
    assert ops is not None and quantization_kind(ops) == "dynamic"


def test_onnxruntime_static_qdq_quantization_is_detected(tmp_path: Path) -> None:
    quantization = pytest.importorskip("onnxruntime.quantization")
    src = _matmul_model(tmp_path / "fp32.onnx")
    dst = tmp_path / "qdq.onnx"

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.feeds = iter([{"x": rng.standard_normal((2, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    quantization.quantize_static(str(src), str(dst), Reader(), quant_format=quantization.QuantFormat.QDQ,
                                 activation_type=quantization.QuantType.QInt8,
                                 weight_type=quantization.QuantType.QInt8)
    ops = onnx_op_types(dst)
    assert ops is not None and quantization_kind(ops) == "qdq"


def test_ops_inside_subgraphs_and_functions_are_found(tmp_path: Path) -> None:
    then = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "then", [],
                             [helper.make_tensor_value_info("c", TensorProto.INT32, [1])])
    other = helper.make_graph([helper.make_node("Identity", ["a"], ["d"])], "else", [],
                              [helper.make_tensor_value_info("d", TensorProto.INT32, [1])])
    node = helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=other)
    func = helper.make_function("local", "f", ["x"], ["y"], [helper.make_node("QuantizeLinear", ["x", "s"], ["y"])],
                                [helper.make_opsetid("", 17)])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("out", TensorProto.INT32, [1])])
    model = helper.make_model(graph, functions=[func], opset_imports=[helper.make_opsetid("", 17),
                                                                      helper.make_opsetid("local", 1)])
    onnx.save(model, str(tmp_path / "nested.onnx"))
    ops = onnx_op_types(tmp_path / "nested.onnx")
    assert ops is not None and {("", "MatMulInteger"), ("", "QuantizeLinear"), ("", "If")} <= ops


def test_unreadable_onnx_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"\x00not a protobuf at all\xff" * 3)
    with pytest.raises(InputError, match="not a readable ONNX model"):
        onnx_op_types(tmp_path / "broken.onnx")


def test_graph_precision_reads_the_file(tmp_path: Path) -> None:
    path = _matmul_model(tmp_path / "unet.onnx")
    graph = BundleGraph("unet", path, (), "0" * 64, "0" * 64, "fp16", (), {})
    assert graph_precision(graph).quantization == "none"
    assert graph_precision(graph).manifest_precision == "fp16"


def test_bundle_graphs_from_manifest(tmp_path: Path) -> None:
    manifest = {
        "precision": "fp16",
        "graphs": {"unet": {"file": "unet.onnx", "inputs": [{"name": "latent", "shape": ["batch", 4, 128]}]},
                   "decoder": {"file": "decoder.onnx", "data_files": ["decoder.onnx.data"], "precision": "int8"}},
        "files": {"unet.onnx": "a" * 64, "decoder.onnx": "b" * 64, "decoder.onnx.data": "c" * 64},
    }
    graphs = bundle_graphs(tmp_path, manifest)
    assert [g.name for g in graphs] == ["unet", "decoder"]
    assert graphs[0].precision == "fp16" and graphs[0].digest == "a" * 64  # bundle precision as the default
    assert graphs[1].precision == "int8" and graphs[1].digest != "b" * 64
    assert [g.name for g in bundle_graphs(tmp_path, manifest, ["decoder"])] == ["decoder"]
    with pytest.raises(InputError, match="has no graph vae"):
        bundle_graphs(tmp_path, manifest, ["vae"])
