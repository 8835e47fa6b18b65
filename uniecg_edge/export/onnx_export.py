"""Export one graph spec to ONNX with ``torch.onnx.export(dynamo=True)`` (opset 18 by default).

The graph's dynamic axes get the spec's names (the exporter's own names, such as ``s53`` for the decoder mask,
are replaced), its inputs and outputs the spec's names. Weights go into one ``.onnx`` file unless they come near
protobuf's 2 GiB limit (over 1.5 GiB), in which case they go to ``<file>.onnx.data`` beside it (recorded in the
manifest).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from ..model.uniecg import UniEcgModel
    from .spec import GraphSpec, TensorSpec

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18  # widest tool support: quantize_dynamic, TensorRT (edge-facts §1.2)
PROTOBUF_LIMIT = 2**31  # a serialised ONNX model (weights inside) cannot exceed 2 GiB
# Weights above this go to external data. torch's ONNXProgram.save forces external data above 1.5 GiB anyway
# (its _LARGE_MODEL_THRESHOLD), which leaves room under protobuf's limit for the graph and serialisation.
EXTERNAL_DATA_THRESHOLD = 1536 * 2**20


@dataclass
class ExportedGraph:
    name: str
    path: Path
    data_files: list[str] = field(default_factory=list)
    size_bytes: int = 0  # the .onnx file plus its data files
    weight_bytes: int = 0
    export_s: float = 0.0
    external_data: bool = False


def weight_bytes(module: nn.Module) -> int:
    """Bytes of the module's distinct parameters and buffers (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (axis-name notices, missing torchvision ops)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _rename_dims(values: Sequence[Any], specs: Sequence[TensorSpec]) -> None:
    """Give the graph's dynamic dimensions the spec's axis names (static dimensions are left as exported)."""
    import onnx_ir as ir

    for value, spec in zip(values, specs, strict=True):
        if value.shape is None or len(value.shape) != len(spec.shape):
            raise ConfigError(f"exported {spec.name} has shape {value.shape}, the spec says {spec.shape}")
        dims = [ir.SymbolicDim(want) if isinstance(want, str) else got
                for got, want in zip(value.shape, spec.shape, strict=True)]
        value.shape = ir.Shape(dims)


def export_graph(spec: GraphSpec, model: UniEcgModel, out_dir: str | os.PathLike[str], *,
                 opset: int = DEFAULT_OPSET, external_data: bool | None = None) -> ExportedGraph:
    """Export ``spec`` for ``model`` into ``out_dir/<spec.file_name>``; ``external_data=None`` decides by size."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module = spec.wrapper(model)
    inputs, outputs = spec.inputs(model), spec.outputs(model)
    start = time.perf_counter()
    with quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module, spec.example_inputs(model), dynamo=True, opset_version=opset, verbose=False,
            input_names=[s.name for s in inputs], output_names=[s.name for s in outputs],
            dynamic_shapes=spec.dynamic_shapes(model, module),
        )
    if program is None:  # only the legacy exporter returns None
        raise ConfigError(f"graph {spec.name}: torch.onnx.export returned no program")
    graph = program.model.graph
    got_in, got_out = [v.name for v in graph.inputs], [v.name for v in graph.outputs]
    if got_in != [s.name for s in inputs] or got_out != [s.name for s in outputs]:
        raise ConfigError(f"graph {spec.name}: exported inputs {got_in} / outputs {got_out} do not match the spec")
    weights = sum(v.const_value.nbytes for v in graph.initializers.values() if v.const_value is not None)
    external = weights > EXTERNAL_DATA_THRESHOLD if external_data is None else external_data
    _rename_dims(graph.inputs, inputs)
    _rename_dims(graph.outputs, outputs)
    path = out / spec.file_name
    with quiet_exporter():
        program.save(path, external_data=external)
    del program
    elapsed = time.perf_counter() - start
    data_files = sorted(p.name for p in out.glob(f"{spec.file_name}.data"))
    size = path.stat().st_size + sum((out / name).stat().st_size for name in data_files)
    log.info("exported %s: %.1f MB in %.1f s%s", spec.name, size / 1e6, elapsed,
             " (external data)" if data_files else "")
    return ExportedGraph(name=spec.name, path=path, data_files=data_files, size_bytes=size, weight_bytes=weights,
                         export_s=elapsed, external_data=bool(data_files))
