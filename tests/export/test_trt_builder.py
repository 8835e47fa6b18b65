"""build-engines orchestration on a real (tiny) bundle with a recording stand-in for ``tensorrt``.

TensorRT cannot be installed on the test machine, so ``FakeTensorRT`` below replaces the module: it records
the calls, parses the real ONNX inputs with ``onnx`` the way TensorRT reports them (-1 = dynamic axis), and
returns bytes as the "engine". What it checks is the orchestration (call sequence, flags per TensorRT version,
profiles, caches, errors), never TensorRT's own behaviour: the real build has not run on a GPU.
"""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.errors import BackendUnavailableError, BundleError, InputError
from uniecg_edge.export.bundle import write_manifest
from uniecg_edge.export.trt import builder as builder_mod
from uniecg_edge.export.trt.builder import (
    TRT_MISSING,
    BuildOptions,
    EngineBuildError,
    ParserErrorFacts,
    build_engines,
    parser_error_line,
    require_tensorrt,
)
from uniecg_edge.export.trt.gpu import GpuInfo

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ORIN = GpuInfo("NVIDIA Jetson AGX Orin Developer Kit", "8.7", "given")
CONFIG = {"name": "tiny", "num_ecg_embeddings": 10, "max_new_tokens": 20, "hidden_size": 8}


# ---- a real tiny bundle ----------------------------------------------------------------------------------------

def _decoder_model(dtype: int) -> Any:
    np_type = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    weight = numpy_helper.from_array(np.eye(8, dtype=np_type), "w")
    nodes = [helper.make_node("MatMul", ["inputs_embeds", "w"], ["logits"]),
             helper.make_node("Identity", ["past_key_values.0.key"], ["present.0.key"]),
             helper.make_node("Identity", ["attention_mask"], ["mask_out"])]
    graph = helper.make_graph(nodes, "decoder", [
        helper.make_tensor_value_info("inputs_embeds", dtype, ["batch", "seq", 8]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total_seq"]),
        helper.make_tensor_value_info("past_key_values.0.key", dtype, ["batch", 2, "past_seq", 4]),
    ], [helper.make_tensor_value_info("logits", dtype, ["batch", "seq", 8]),
        helper.make_tensor_value_info("present.0.key", dtype, ["batch", 2, "past_seq", 4]),
        helper.make_tensor_value_info("mask_out", TensorProto.INT64, ["batch", "total_seq"])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _vae_model() -> Any:
    graph = helper.make_graph([helper.make_node("Identity", ["latent"], ["ecg"])], "vae", [
        helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["batch", 4, 16])],
        [helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", 4, 16])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def make_bundle(root: Path, precision: str = "fp32") -> Path:
    root.mkdir(parents=True)
    dtype = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    onnx.save_model(_decoder_model(dtype), str(root / "decoder.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="decoder.onnx.data", size_threshold=0)
    onnx.save_model(_vae_model(), str(root / "vae_decoder.onnx"))
    (root / "config.json").write_text(json.dumps(CONFIG))
    dt = "float16" if precision == "fp16" else "float32"
    write_manifest(root, {
        "format": "uniecg-edge-bundle", "format_version": 1, "precision": precision,
        "graphs": {
            "decoder": {
                "file": "decoder.onnx", "data_files": ["decoder.onnx.data"], "precision": precision,
                "inputs": [{"name": "inputs_embeds", "dtype": dt, "shape": ["batch", "seq", 8]},
                           {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "total_seq"]},
                           {"name": "past_key_values.0.key", "dtype": dt, "shape": ["batch", 2, "past_seq", 4]}],
                "profile": {"inputs_embeds": {"min": [1, 1, 8], "opt": [1, 16, 8], "max": [2, 64, 8]}},
            },
            "vae_decoder": {"file": "vae_decoder.onnx", "precision": "fp32",
                            "inputs": [{"name": "latent", "dtype": "float32", "shape": ["batch", 4, 16]}]},
        },
    })
    return root


# ---- the stand-in for the tensorrt module ----------------------------------------------------------------------

class FakeTensorRT(types.ModuleType):
    """Records calls like the tensorrt Python API; ``weak_flags`` False models TensorRT 11 (no FP16/INT8)."""

    def __init__(self, version: str, *, weak_flags: bool = True, parse_errors: int = 0, build_fails: bool = False):
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple[Any, ...]] = []
        fake = self
        members = {"STRICT_TYPES_UNUSED": 99}
        if weak_flags:
            members.update(FP16=0, INT8=1)
        self.BuilderFlag = types.SimpleNamespace(**members)
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")

        class ILogger:
            WARNING = 2

            def __init__(self) -> None:
                fake.calls.append(("ILogger.__init__",))

        class Dims(tuple):
            pass

        class Network:
            def __init__(self, flags: int) -> None:
                self.flags = flags
                self.inputs: list[Any] = []

            @property
            def num_inputs(self) -> int:
                return len(self.inputs)

            def get_input(self, index: int) -> Any:
                return self.inputs[index]

        class ParserError:
            def __init__(self, index: int) -> None:
                self.index = index

            def desc(self) -> str:
                return f"Assertion failed: unsupported\n operator {self.index}"

            def node(self) -> int:
                return 3 + self.index

            def node_name(self) -> str:
                return f"/layers.{self.index}/Attention"

            def node_operator(self) -> str:
                return "Attention"

            def code(self) -> str:
                return "ErrorCode.UNSUPPORTED_NODE"

        class OnnxParser:
            def __init__(self, network: Network, logger: ILogger) -> None:
                self.network = network
                self.logger = logger
                self.num_errors = 0

            def parse_from_file(self, path: str) -> bool:
                fake.calls.append(("parse_from_file", Path(path).name))
                self.logger.log(2, f"parsing {Path(path).name}")  # TensorRT talks through the logger
                if parse_errors:
                    self.num_errors = parse_errors
                    return False
                model = onnx.load(path)  # external data must sit beside the file, as for TensorRT
                for value in model.graph.input:
                    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
                    self.network.inputs.append(types.SimpleNamespace(name=value.name, shape=Dims(dims),
                                                                     is_shape_tensor=False))
                return True

            def get_error(self, index: int) -> ParserError:
                return ParserError(index)

        class TimingCache:
            def __init__(self, data: bytes) -> None:
                self.data = bytes(data)

            def serialize(self) -> bytes:
                return self.data + b"+entry"

        class Profile:
            def set_shape(self, name: str, lo: Dims, opt: Dims, hi: Dims) -> None:
                assert all(isinstance(d, Dims) for d in (lo, opt, hi))
                fake.calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

        class Config:
            def __init__(self) -> None:
                self.cache: TimingCache | None = None

            def set_memory_pool_limit(self, pool: str, size: int) -> None:
                fake.calls.append(("set_memory_pool_limit", pool, size))

            def set_flag(self, flag: int) -> None:
                fake.calls.append(("set_flag", flag))

            def create_timing_cache(self, data: bytes) -> TimingCache:
                fake.calls.append(("create_timing_cache", bytes(data)))
                return TimingCache(data)

            def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
                fake.calls.append(("set_timing_cache", cache.data, ignore_mismatch))
                ok = cache.data == b"" or cache.data.startswith(b"orin-cache")
                if ok:
                    self.cache = cache if cache.data else TimingCache(b"orin-cache")
                return ok

            def get_timing_cache(self) -> TimingCache:
                assert self.cache is not None
                return self.cache

            def add_optimization_profile(self, profile: Profile) -> int:
                fake.calls.append(("add_optimization_profile",))
                return 0

        class Builder:
            def __init__(self, logger: ILogger) -> None:
                fake.calls.append(("Builder",))

            def create_network(self, flags: int = 0) -> Network:
                fake.calls.append(("create_network", flags))
                return Network(flags)

            def create_builder_config(self) -> Config:
                fake.calls.append(("create_builder_config",))
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
                fake.calls.append(("build_serialized_network",))
                return None if build_fails else memoryview(json.dumps({"flags": network.flags}).encode())

        self.ILogger, self.Dims, self.OnnxParser, self.Builder = ILogger, Dims, OnnxParser, Builder

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def install(monkeypatch: pytest.MonkeyPatch, version: str, **kwargs: Any) -> FakeTensorRT:
    fake = FakeTensorRT(version, **kwargs)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


# ---- the build -------------------------------------------------------------------------------------------------

def test_jetpack6_fp16_build_sequence_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    bundle = make_bundle(tmp_path / "b")
    trt = install(monkeypatch, "10.3.0.30")
    with caplog.at_level(logging.INFO, logger="uniecg_edge"):
        results = build_engines(bundle, BuildOptions(precision="fp16", graphs=("decoder",)), gpu=ORIN)
    assert trt.names() == ["ILogger.__init__", "Builder", "create_network", "parse_from_file",
                           "create_builder_config", "set_memory_pool_limit", "set_flag", "create_timing_cache",
                           "set_timing_cache", "set_shape", "set_shape", "set_shape", "add_optimization_profile",
                           "build_serialized_network"]
    assert ("create_network", 0) in trt.calls and ("set_flag", trt.BuilderFlag.FP16) in trt.calls
    assert ("set_memory_pool_limit", "WORKSPACE", 2048 << 20) in trt.calls
    assert ("parse_from_file", "decoder.onnx") in trt.calls
    shapes = {c[1]: c[2:] for c in trt.calls if c[0] == "set_shape"}
    assert shapes["inputs_embeds"] == ((1, 1, 8), (1, 16, 8), (2, 64, 8))  # from the manifest
    # fallback (context 10 + 256 + 20 -> 320) with batch and seq as the manifest ranges them for inputs_embeds
    assert shapes["past_key_values.0.key"] == ((1, 2, 0, 4), (1, 2, 128, 4), (2, 2, 320, 4))
    assert shapes["attention_mask"] == ((1, 1), (1, 16 + 128), (2, 64 + 320))
    [result] = results
    assert not result.cache_hit and result.precision == "fp16" and not result.strongly_typed
    assert result.key.startswith("nvidia-jetson-agx-orin-developer-kit_sm87_trt10.3.0.30_") and result.key.endswith(
        "_fp16")
    assert result.plan == bundle / "engines" / result.key / "decoder.plan" and result.plan.is_file()
    meta = json.loads((result.plan.parent / "engine.json").read_text())
    entry = meta["graphs"]["decoder"]
    assert meta["tensorrt_version"] == "10.3.0.30" and meta["gpu"]["compute_capability"] == "8.7"
    assert entry["typing"] == "weak" and entry["builder_flags"] == ["FP16"] and entry["build_s"] >= 0
    assert entry["graph_sha256"] in result.key or entry["graph_sha256"][:12] in result.key
    timing = bundle / "engines" / "timing-nvidia-jetson-agx-orin-developer-kit_sm87_trt10.3.0.30_fp16.cache"
    assert timing.read_bytes() == b"orin-cache+entry"
    assert "TensorRT: parsing decoder.onnx" in caplog.text


def test_second_run_is_a_cache_hit_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    bundle = make_bundle(tmp_path / "b")
    install(monkeypatch, "10.3.0.30")
    first = build_engines(bundle, BuildOptions(precision="fp16"), gpu=ORIN)
    trt = install(monkeypatch, "10.3.0.30")
    with caplog.at_level(logging.INFO, logger="uniecg_edge"):
        second = build_engines(bundle, BuildOptions(precision="fp16"), gpu=ORIN)
    assert "Builder" not in trt.names() and all(r.cache_hit for r in second)
    assert [r.plan for r in second] == [r.plan for r in first]
    assert caplog.text.count("engine cache hit") == 2
    forced = build_engines(bundle, BuildOptions(precision="fp16", force=True), gpu=ORIN)
    assert trt.names().count("build_serialized_network") == 2 and not any(r.cache_hit for r in forced)


def test_timing_cache_is_reused_by_the_next_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    trt = install(monkeypatch, "10.3.0.30")
    build_engines(bundle, BuildOptions(precision="fp16"), gpu=ORIN)
    loaded = [c[1] for c in trt.calls if c[0] == "create_timing_cache"]
    assert loaded == [b"", b"orin-cache+entry"]  # the vae build starts from the decoder's timing cache


def test_foreign_timing_cache_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    bundle = make_bundle(tmp_path / "b")
    timing = bundle / "engines" / "timing-nvidia-jetson-agx-orin-developer-kit_sm87_trt10.3.0.30_fp32.cache"
    timing.parent.mkdir()
    timing.write_bytes(b"h100-cache")
    trt = install(monkeypatch, "10.3.0.30")
    build_engines(bundle, BuildOptions(graphs=("vae_decoder",)), gpu=ORIN)
    assert [c[1] for c in trt.calls if c[0] == "set_timing_cache"] == [b"h100-cache", b""]
    assert "does not fit this device" in caplog.text and timing.read_bytes() == b"orin-cache+entry"


def test_changed_profile_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    install(monkeypatch, "10.3.0.30")
    build_engines(bundle, BuildOptions(graphs=("vae_decoder",)), gpu=ORIN)
    again = build_engines(bundle, BuildOptions(graphs=("vae_decoder",), max_batch=8), gpu=ORIN)
    assert not again[0].cache_hit


def test_trt11_builds_strongly_typed_without_precision_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b", precision="fp16")
    trt = install(monkeypatch, "11.4.0.106", weak_flags=False)
    [result] = build_engines(bundle, BuildOptions(precision="fp16", graphs=("decoder",)), gpu=ORIN)
    assert ("create_network", 1 << 1) in trt.calls and "set_flag" not in trt.names()
    assert result.strongly_typed and result.precision == "fp16" and "_trt11.4.0.106_" in result.key


def test_trt11_refuses_fp16_on_fp32_bundle_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    trt = install(monkeypatch, "11.4.0.106", weak_flags=False)
    with pytest.raises(InputError, match="strongly typed networks only"):
        build_engines(bundle, BuildOptions(precision="fp16"), gpu=ORIN)
    assert trt.calls == [] and not (bundle / "engines").exists()


def test_trt_10_13_prefers_strong_typing_for_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    trt = install(monkeypatch, "10.13.0.35")
    [result] = build_engines(bundle, BuildOptions(graphs=("vae_decoder",)), gpu=ORIN)
    assert ("create_network", 2) in trt.calls and result.strongly_typed
    [weak] = build_engines(bundle, BuildOptions(precision="fp16", graphs=("vae_decoder",)), gpu=ORIN)
    assert ("set_flag", trt.BuilderFlag.FP16) in trt.calls and not weak.strongly_typed


def test_parser_errors_become_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    install(monkeypatch, "10.3.0.30", parse_errors=3)
    with pytest.raises(EngineBuildError) as info:
        build_engines(bundle, BuildOptions(graphs=("decoder",)), gpu=ORIN)
    message = str(info.value)
    assert "\n" not in message
    assert message == ("TensorRT could not parse decoder.onnx: Assertion failed: unsupported operator 0 "
                       "[node 3, '/layers.0/Attention', op Attention, ErrorCode.UNSUPPORTED_NODE] (+2 more)")


def test_parser_error_line_without_details() -> None:
    assert parser_error_line("unet.onnx", []) == "TensorRT could not parse unet.onnx (no parser error was recorded)"
    assert parser_error_line("unet.onnx", [ParserErrorFacts("bad", node=-1)]) == \
        "TensorRT could not parse unet.onnx: bad"


def test_failed_build_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    install(monkeypatch, "10.3.0.30", build_fails=True)
    with pytest.raises(EngineBuildError, match="could not build an engine for graph vae_decoder"):
        build_engines(bundle, BuildOptions(graphs=("vae_decoder",)), gpu=ORIN)
    assert not list((bundle / "engines").glob("*/vae_decoder.plan"))


def test_tampered_bundle_is_refused_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    with (bundle / "decoder.onnx.data").open("ab") as fh:
        fh.write(b"\x00")
    trt = install(monkeypatch, "10.3.0.30")
    with pytest.raises(BundleError, match="decoder.onnx.data does not match"):
        build_engines(bundle, gpu=ORIN)
    assert trt.calls == []


def test_engines_folder_keeps_the_bundle_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from uniecg_edge.export.bundle import load_bundle

    bundle = make_bundle(tmp_path / "b")
    install(monkeypatch, "10.3.0.30")
    build_engines(bundle, gpu=ORIN)
    assert load_bundle(bundle).graph_names == ["decoder", "vae_decoder"]


# ---- without TensorRT ------------------------------------------------------------------------------------------

def test_missing_tensorrt_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ModuleNotFoundError
    with pytest.raises(BackendUnavailableError) as info:
        require_tensorrt()
    assert str(info.value) == TRT_MISSING


def test_stub_only_tensorrt_is_not_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what `pip install tensorrt-stubs` leaves: tensorrt/__init__.pyi without code, a namespace package
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("__version__: str\n")
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="only type stubs were found"):
        require_tensorrt()


def test_broken_tensorrt_install_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tensorrt.py").write_text(
        "raise ImportError('libnvonnxparser.so.11: cannot open shared object file: No such file or directory')\n")
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="installed but cannot be loaded: libnvonnxparser.so.11"):
        require_tensorrt()


def test_cli_without_tensorrt_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = CliRunner().invoke(main, ["build-engines", str(bundle), "--fp16"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {TRT_MISSING}"


def test_cli_builds_and_reports_cache_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    install(monkeypatch, "10.3.0.30")
    monkeypatch.setattr(builder_mod, "detect_gpu", lambda: ORIN)
    first = CliRunner().invoke(main, ["build-engines", str(bundle), "--fp16", "--graph", "vae_decoder"])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("vae_decoder: built in ") and "fp16 weakly typed" in first.output
    again = CliRunner().invoke(main, ["build-engines", str(bundle), "--fp16", "--graph", "vae_decoder", "--json"])
    record = json.loads(again.output)
    assert record["cache_hit"] is True and record["precision"] == "fp16" and Path(record["plan"]).is_file()
    unknown = CliRunner().invoke(main, ["build-engines", str(bundle), "--graph", "unet"])
    assert unknown.exit_code == 2 and "has no graph unet" in unknown.output
