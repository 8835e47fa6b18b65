"""The tensorrt backend without TensorRT: engine lookup in ``engines/<key>/``, one-line refusals, and its buffer
and KV-cache logic run against a stand-in engine.

No GPU or TensorRT exists on the test machine, so the stand-in plays TensorRT's part: a "plan" file holds the path
of the bundle's ONNX graph, the engine runs it with onnxruntime on the CPU, and "device memory" is host byte
buffers at fake addresses (writes beyond an allocation fail). The backend's own code (engine lookup, shapes,
addresses, the two KV banks, copies) runs unchanged and must give the onnxruntime backend's results.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import BackendUnavailableError
from uniecg_edge.export.bundle import load_bundle
from uniecg_edge.export.trt.cache import engine_key, store_engine
from uniecg_edge.export.trt.gpu import GpuInfo
from uniecg_edge.export.trt.graphs import graph_digest
from uniecg_edge.runtime import EdgeRuntime
from uniecg_edge.runtime.backends import BackendOptions
from uniecg_edge.runtime.backends.trt_backend import TensorRtBackend, find_engines, tensorrt_unavailable
from uniecg_edge.runtime.graph import DTYPES
from uniecg_edge.wfdb_io import read_record

ORIN = GpuInfo("NVIDIA Jetson AGX Orin Developer Kit", "8.7", "given")
TRT_VERSION = "10.3.0.30"


class FakeDeviceMemory:
    """``CudaRuntime``'s interface over host byte buffers at made-up addresses."""

    stream = 0

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}
        self._next = itertools.count(0x1000, 0x1000)

    def malloc(self, nbytes: int) -> int:
        pointer = next(self._next)
        self.blocks[pointer] = bytearray(max(nbytes, 256))
        return pointer

    def free(self, pointer: int) -> None:
        del self.blocks[pointer]

    def write(self, pointer: int, data: bytes) -> None:
        block = self.blocks[pointer]
        assert len(data) <= len(block), f"write of {len(data)} bytes into a {len(block)}-byte allocation"
        block[:len(data)] = data

    def read(self, pointer: int, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape))
        data = bytes(self.blocks[pointer][:count * np.dtype(dtype).itemsize])
        return np.frombuffer(data, dtype, count).reshape(shape)

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        self.write(pointer, np.ascontiguousarray(array).tobytes())

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        array[...] = self.read(pointer, array.dtype, array.shape)

    def synchronize(self) -> None:
        pass


class FakeEngine:
    """An "engine" whose plan names an ONNX file, run with onnxruntime on the data in fake device memory."""

    def __init__(self, onnx_path: Path, memory: FakeDeviceMemory) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.memory = memory
        self.io = {i.name: ("in", i) for i in self.session.get_inputs()}
        self.io.update({o.name: ("out", o) for o in self.session.get_outputs()})
        self.names = list(self.io)
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> str:
        return self.io[name][0]

    def get_tensor_dtype(self, name: str) -> Any:
        return DTYPES[self.io[name][1].type]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in self.io[name][1].shape)

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        assert self.engine.io[name][0] == "in"
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, pointer: int) -> bool:
        self.addresses[name] = pointer
        return True

    def _outputs(self) -> dict[str, np.ndarray]:
        memory, engine = self.engine.memory, self.engine
        feeds = {n: memory.read(self.addresses[n], engine.get_tensor_dtype(n), self.shapes[n])
                 for n, (mode, _) in engine.io.items() if mode == "in"}
        names = [n for n, (mode, _) in engine.io.items() if mode == "out"]
        return dict(zip(names, engine.session.run(names, feeds), strict=True))

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.engine.io[name][0] == "in":
            return self.shapes[name]
        return tuple(self._outputs()[name].shape)

    def execute_async_v3(self, stream: int) -> bool:
        for name, value in self._outputs().items():
            self.engine.memory.to_device(self.addresses[name], value)
        return True


def fake_tensorrt(memory: FakeDeviceMemory) -> SimpleNamespace:
    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes) -> FakeEngine:
            return FakeEngine(Path(plan.decode()), memory)

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    return SimpleNamespace(__version__=TRT_VERSION, TensorIOMode=SimpleNamespace(INPUT="in"), nptype=lambda t: t,
                           Runtime=Runtime, Logger=Logger)


def add_engines(bundle_dir: Path, precision: str = "fp16", graphs: list[str] | None = None) -> None:
    """Engines as build-engines stores them (engine.json with the plan's sha256), for ORIN and TRT_VERSION."""
    bundle = load_bundle(bundle_dir)
    files = bundle.manifest["files"]
    for name, entry in bundle.manifest["graphs"].items():
        if graphs is not None and name not in graphs:
            continue
        digest = graph_digest(entry["file"], entry.get("data_files") or (), files)
        key = engine_key(ORIN, TRT_VERSION, digest, precision)
        store_engine(bundle_dir, key, name, str(bundle_dir / entry["file"]).encode(),
                     {"gpu": ORIN.to_dict(), "tensorrt_version": TRT_VERSION, "precision": precision},
                     {"onnx": entry["file"], "graph_sha256": digest, "profile": {}})


@pytest.fixture
def bundle_copy(int8_bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(int8_bundle, target)
    return target


def test_engines_are_found_by_key_and_checked(bundle_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    bundle = load_bundle(bundle_copy)
    assert find_engines(bundle, ORIN, TRT_VERSION) == {}
    add_engines(bundle_copy, "fp32")
    add_engines(bundle_copy, "int8", graphs=["unet"])
    found = find_engines(bundle, ORIN, TRT_VERSION)
    assert set(found) == set(bundle.manifest["graphs"])
    assert found["unet"].precision == "int8" and found["decoder"].precision == "fp32"  # narrowest built wins
    assert find_engines(bundle, GpuInfo("NVIDIA H100", "9.0", "given"), TRT_VERSION) == {}
    assert find_engines(bundle, ORIN, "10.7.0") == {}
    found["unet"].plan.write_bytes(b"changed")  # no longer the engine.json's sha256
    with caplog.at_level(logging.WARNING):
        assert find_engines(bundle, ORIN, TRT_VERSION)["unet"].precision == "fp32"
    assert "does not match its engine.json" in caplog.text


def test_auto_and_tensorrt_refuse_in_one_line_without_tensorrt(bundle_copy: Path) -> None:
    bundle = load_bundle(bundle_copy)
    assert "no TensorRT engines in" in str(tensorrt_unavailable(bundle))
    add_engines(bundle_copy)
    assert "TensorRT is not installed" in str(tensorrt_unavailable(bundle))  # engines, but no tensorrt here
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed") as err:
        EdgeRuntime.from_bundle(bundle_copy, backend="tensorrt")
    assert "\n" not in str(err.value)
    memory = FakeDeviceMemory()
    with pytest.raises(BackendUnavailableError, match="no TensorRT engines for NVIDIA H100 .* build-engines"):
        TensorRtBackend(bundle, BackendOptions(), trt=fake_tensorrt(memory), cuda=memory,  # type: ignore[arg-type]
                        gpu=GpuInfo("NVIDIA H100", "9.0", "given"))


def test_the_backend_logic_gives_the_onnxruntime_results(bundle_copy: Path) -> None:
    add_engines(bundle_copy)
    bundle = load_bundle(bundle_copy)
    memory = FakeDeviceMemory()
    backend = TensorRtBackend(bundle, BackendOptions(), trt=fake_tensorrt(memory), cuda=memory,  # type: ignore[arg-type]
                              gpu=ORIN)
    on_trt = EdgeRuntime(bundle, backend, backend_requested="tensorrt")
    on_ort = EdgeRuntime.from_bundle(bundle_copy, backend="onnxruntime")
    record = read_record(EXAMPLE_RECORD)
    a = on_trt.interpret(record, max_new_tokens=16)
    b = on_ort.interpret(record, max_new_tokens=16)
    assert a.text == b.text and a.provenance["stop_reason"] == b.provenance["stop_reason"]
    assert a.provenance["backend"] == "tensorrt"
    assert a.provenance["execution_provider"] == f"tensorrt-{TRT_VERSION} on {ORIN.name} (sm87)"
    assert a.provenance["backend_details"]["engines"]["decoder"]["precision"] == "fp16"
    banks = on_trt._kv[1].banks  # type: ignore[union-attr]
    allocated = len(memory.blocks)
    on_trt.interpret(record, max_new_tokens=16)  # a second report reuses the cache banks and buffers
    assert on_trt._kv[1].banks is banks and len(memory.blocks) == allocated  # type: ignore[union-attr]
    x = on_trt.generate("sinus rhythm", hr=70, age=50, sex="F", steps=4, scheduler="dpmsolver++", seed=5)
    y = on_ort.generate("sinus rhythm", hr=70, age=50, sex="F", steps=4, scheduler="dpmsolver++", seed=5)
    np.testing.assert_allclose(x.record.signal, y.record.signal, rtol=1e-5, atol=1e-5)
