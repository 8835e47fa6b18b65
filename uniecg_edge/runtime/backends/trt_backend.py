"""The ``tensorrt`` backend: the engines ``uniecg-edge build-engines`` left in ``BUNDLE/engines/<key>/``.

Engines are looked up by the key of :mod:`uniecg_edge.export.trt.cache` (GPU name, compute capability, TensorRT
version, graph sha256, precision) and checked against their ``engine.json`` sha256; the narrowest precision built
wins (int8 > fp16 > fp32). ``tensorrt`` is imported only when this backend opens; without it, without a GPU or
without engines for this GPU the backend refuses in one line (``BackendUnavailableError``, exit status 2).
Tensors go through device buffers of the CUDA runtime (:mod:`.cuda_memory`); the decoder's KV cache stays on the
device in two banks per layer allocated once, the previous step's ``present.*`` buffer being the next step's
``past_key_values.*``. This path has not run on a GPU in the project's tests yet.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import BackendUnavailableError
from ..generation import EMBEDS, HIDDEN, LOGITS, MASK, POSITIONS, DecoderGraph
from .base import BACKENDS, BackendOptions, Graph, KvDecoder, TensorInfo, cast_feeds
from .cuda_memory import CudaRuntime, DeviceBuffer

if TYPE_CHECKING:
    from ...export.bundle import Bundle
    from ...export.trt.gpu import GpuInfo

log = logging.getLogger(__name__)

PRECISION_PREFERENCE = ("int8", "fp16", "fp32")
GPU_PROBES = ("nvidia-smi", "jetson")  # not torch: the runtime does not import it


@dataclass(frozen=True)
class EngineChoice:
    graph: str
    plan: Path
    key: str
    precision: str


def find_engines(bundle: Bundle, gpu: GpuInfo, trt_version: str) -> dict[str, EngineChoice]:
    """Graph name -> the engine built for this GPU and TensorRT from exactly this graph (sha256 checked)."""
    from ...export.bundle import sha256_file
    from ...export.trt.cache import engine_key, engine_paths, read_engine_meta
    from ...export.trt.graphs import graph_digest

    files = bundle.manifest["files"]
    found: dict[str, EngineChoice] = {}
    for name, entry in bundle.manifest["graphs"].items():
        digest = graph_digest(str(entry["file"]), entry.get("data_files") or (), files)
        for precision in PRECISION_PREFERENCE:
            key = engine_key(gpu, trt_version, digest, precision)
            paths = engine_paths(bundle.root, key, name)
            if not paths.plan.is_file():
                continue
            meta = read_engine_meta(paths.meta)
            recorded = (meta.get("graphs") or {}).get(name)
            if meta.get("key") != key or not isinstance(recorded, dict) or \
                    recorded.get("plan_sha256") != sha256_file(paths.plan):
                log.warning("ignoring %s: it does not match its engine.json", paths.plan)
                continue
            found[name] = EngineChoice(name, paths.plan, key, precision)
            break
    return found


def tensorrt_unavailable(bundle: Bundle) -> str | None:
    """Why ``auto`` cannot use the tensorrt backend for ``bundle`` (None: it can). Cheap when no engine exists."""
    from ...export.trt import detect_gpu, require_tensorrt

    if not any((bundle.root / "engines").glob("*/*.plan")):
        return f"no TensorRT engines in {bundle.root / 'engines'} (uniecg-edge build-engines builds them)"
    try:
        version = require_tensorrt()
        gpu = detect_gpu(GPU_PROBES)
    except BackendUnavailableError as exc:
        return str(exc)
    missing = sorted(set(bundle.manifest["graphs"]) - set(find_engines(bundle, gpu, version)))
    if missing:
        return f"no engines for {gpu.name} (sm{gpu.sm}), TensorRT {version} for graph(s) {', '.join(missing)}"
    return None


def _dims(shape: Any) -> tuple[int | None, ...]:
    return tuple(None if int(d) < 0 else int(d) for d in shape)


class TrtGraph:
    """One engine and its execution context as a :class:`~.base.Graph` (host arrays in and out)."""

    def __init__(self, name: str, engine: Any, trt: Any, cuda: CudaRuntime) -> None:
        self.name, self.engine, self.cuda = name, engine, cuda
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        infos = {n: TensorInfo(n, trt.nptype(engine.get_tensor_dtype(n)), _dims(engine.get_tensor_shape(n)))
                 for n in names}
        self.inputs = [infos[n] for n in names if is_input[n]]
        self.outputs = [infos[n] for n in names if not is_input[n]]
        self.buffers = {n: DeviceBuffer(cuda) for n in names}

    def set_input(self, name: str, array: np.ndarray) -> None:
        """Shape, device copy and address of one input (``array`` must stay alive until :meth:`finish`)."""
        self.context.set_input_shape(name, tuple(array.shape))
        pointer = self.buffers[name].ensure(array.nbytes)
        self.cuda.to_device(pointer, array)
        self.context.set_tensor_address(name, pointer)

    def output_array(self, info: TensorInfo) -> np.ndarray:
        """A host array for output ``info`` at the shape the context infers, its device buffer bound."""
        shape = tuple(int(d) for d in self.context.get_tensor_shape(info.name))
        host = np.empty(shape, info.dtype)
        self.context.set_tensor_address(info.name, self.buffers[info.name].ensure(host.nbytes))
        return host

    def execute(self, host_outputs: Mapping[str, np.ndarray]) -> None:
        """Run the engine, copy ``host_outputs`` back and wait for the stream."""
        if not self.context.execute_async_v3(self.cuda.stream):
            raise BackendUnavailableError(f"TensorRT could not run the engine of graph {self.name}")
        for name, host in host_outputs.items():
            self.cuda.to_host(host, self.buffers[name].pointer)
        self.cuda.synchronize()

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = cast_feeds(self.inputs, feeds, self.name)
        for name, array in arrays.items():
            self.set_input(name, array)
        outputs = {o.name: self.output_array(o) for o in self.outputs}
        self.execute(outputs)
        return outputs


class TrtKvDecoder:
    """The decoder engine with its KV cache on the device: two banks of buffers per cache tensor, allocated once
    for ``max_total_tokens``; each step reads one bank as past and writes the other as present."""

    def __init__(self, graph: TrtGraph, max_total_tokens: int) -> None:
        self.graph = graph
        self.layout = DecoderGraph(graph)
        self.max_total = int(max_total_tokens)
        itemsize = np.dtype(self.layout.past_dtype).itemsize
        nbytes = self.layout.kv_heads * self.max_total * self.layout.head_dim * itemsize
        self.banks = [[graph.cuda.malloc(nbytes) for _ in self.layout.past_names] for _ in range(2)]
        self.length = 0
        self.bank = 0
        by_name = {i.name: i for i in [*graph.inputs, *graph.outputs]}
        self._host = [by_name[n] for n in (EMBEDS, MASK, POSITIONS)]
        self._results = [by_name[n] for n in (LOGITS, HIDDEN)]

    def prefill(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
                position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.length, self.bank = 0, 0
        return self.step(inputs_embeds, attention_mask, position_ids)

    def step(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
             position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        graph, layout = self.graph, self.layout
        seq = int(inputs_embeds.shape[1])
        if self.length + seq > self.max_total:
            raise ValueError(f"KV cache holds {self.max_total} tokens; {self.length + seq} asked for")
        feeds = {EMBEDS: inputs_embeds, MASK: attention_mask, POSITIONS: position_ids}
        arrays = cast_feeds(self._host, feeds, graph.name)
        for name, array in arrays.items():
            graph.set_input(name, array)
        past_shape = (1, layout.kv_heads, self.length, layout.head_dim)
        for name, pointer in zip(layout.past_names, self.banks[self.bank], strict=True):
            graph.context.set_input_shape(name, past_shape)
            graph.context.set_tensor_address(name, pointer)
        for name, pointer in zip(layout.present_names, self.banks[1 - self.bank], strict=True):
            graph.context.set_tensor_address(name, pointer)
        outputs = {o.name: graph.output_array(o) for o in self._results}
        graph.execute(outputs)
        self.bank, self.length = 1 - self.bank, self.length + seq
        return outputs[LOGITS][0, -1], outputs[HIDDEN][0, -1]


class TensorRtBackend:
    """A bundle's TensorRT engines on this GPU."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, options: BackendOptions, *, trt: Any = None, cuda: CudaRuntime | None = None,
                 gpu: GpuInfo | None = None) -> None:
        from ...export.trt import detect_gpu, require_tensorrt

        if trt is None:
            require_tensorrt()
            trt = importlib.import_module("tensorrt")
        self.trt = trt
        self.version = str(trt.__version__)
        self.bundle = bundle
        self.gpu = gpu or detect_gpu(GPU_PROBES)
        self.engines = find_engines(bundle, self.gpu, self.version)
        if not self.engines:
            raise BackendUnavailableError(
                f"no TensorRT engines for {self.gpu.name} (sm{self.gpu.sm}) and TensorRT {self.version} in "
                f"{bundle.root / 'engines'}: run 'uniecg-edge build-engines {bundle.root}'")
        self.cuda = cuda or CudaRuntime()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._graphs: dict[str, TrtGraph] = {}
        log.info("TensorRT %s on %s (sm%s): engines %s", self.version, self.gpu.name, self.gpu.sm,
                 {g: c.precision for g, c in self.engines.items()})

    @property
    def execution_provider(self) -> str:
        return f"tensorrt-{self.version} on {self.gpu.name} (sm{self.gpu.sm})"

    def graph(self, name: str) -> Graph:
        if name not in self._graphs:
            choice = self.engines.get(name)
            if choice is None:
                raise BackendUnavailableError(f"no TensorRT engine for graph {name} on {self.gpu.name}: run "
                                              f"'uniecg-edge build-engines {self.bundle.root} --graph {name}'")
            engine = self.runtime.deserialize_cuda_engine(choice.plan.read_bytes())
            if engine is None:
                raise BackendUnavailableError(f"TensorRT {self.version} cannot load {choice.plan} (built by another "
                                              "TensorRT or for another GPU?)")
            self._graphs[name] = TrtGraph(name, engine, self.trt, self.cuda)
        return self._graphs[name]

    def kv_decoder(self, graph: Graph, max_total_tokens: int) -> KvDecoder:
        if not isinstance(graph, TrtGraph):
            raise TypeError("the tensorrt backend decodes with its own engines")
        return TrtKvDecoder(graph, max_total_tokens)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "execution_provider": self.execution_provider, "tensorrt_version": self.version,
                "gpu": self.gpu.to_dict(),
                "engines": {g: {"key": c.key, "precision": c.precision} for g, c in self.engines.items()}}


@BACKENDS.register("tensorrt")
def open_tensorrt(bundle: Bundle, options: BackendOptions) -> TensorRtBackend:
    return TensorRtBackend(bundle, options)
