"""What build-engines needs to know about a bundle graph: its files, checksum, precision and quantization kind.

Everything here reads the manifest (bundle contract, notes/bundle.md) and, when the ``onnx`` package is
installed, the graph's operator types (without loading external weights). No TensorRT.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, InputError
from .versions import GraphPrecision

log = logging.getLogger(__name__)

DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
DYNAMIC_QUANT_OPS = frozenset({
    "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv",
    "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
})
WEIGHT_ONLY_OPS = frozenset({"MatMulNBits", "GatherBlockQuantized", "MatMulFpQ4"})
CONTRIB_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class BundleGraph:
    """One graph of the manifest: name, ONNX path, external data files, checksums and declared precision."""

    name: str
    path: Path
    data_files: tuple[str, ...]
    sha256: str  # of the .onnx file, from the manifest
    digest: str  # sha256 over the .onnx and its data files (== sha256 when there are none)
    precision: str
    inputs: tuple[Mapping[str, Any], ...]
    profile: Mapping[str, Mapping[str, Any]]


def graph_digest(file: str, data_files: Iterable[str], files: Mapping[str, str]) -> str:
    """The checksum that names an engine: the manifest's sha256 of the .onnx file, or, when the graph keeps its
    weights in external data files, a sha256 over ``"<name> <sha256>\\n"`` of the .onnx and each data file."""
    data = sorted(data_files)
    for name in (file, *data):
        if name not in files:
            raise ConfigError(f"manifest.json lists no sha256 for {name}")
    if not data:
        return str(files[file])
    lines = "".join(f"{name} {files[name]}\n" for name in (file, *data))
    return hashlib.sha256(lines.encode()).hexdigest()


def bundle_graphs(bundle_dir: Path, manifest: Mapping[str, Any], names: Iterable[str] | None = None
                  ) -> list[BundleGraph]:
    """The manifest's graphs (all, or those named, in manifest order) as ``BundleGraph``; unknown names refused."""
    graphs = manifest.get("graphs")
    files = manifest.get("files")
    if not isinstance(graphs, dict) or not graphs or not isinstance(files, dict):
        raise ConfigError(f"{bundle_dir / 'manifest.json'} has no 'graphs' or 'files' table")
    wanted = list(graphs) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in graphs]
    if unknown:
        raise InputError(f"bundle {bundle_dir} has no graph {', '.join(unknown)} (graphs: {', '.join(graphs)})")
    result = []
    for name in wanted:
        entry = graphs[name]
        try:
            file = str(entry["file"])
        except (TypeError, KeyError):
            raise ConfigError(f"{bundle_dir / 'manifest.json'}: graph {name} has no 'file'") from None
        data_files = tuple(str(d) for d in entry.get("data_files") or ())
        result.append(BundleGraph(
            name=name,
            path=bundle_dir / file,
            data_files=data_files,
            sha256=str(files.get(file, "")),
            digest=graph_digest(file, data_files, files),
            precision=str(entry.get("precision") or manifest.get("precision") or "fp32"),
            inputs=tuple(entry.get("inputs") or ()),
            profile=dict(entry.get("profile") or {}),
        ))
    return result


def quantization_kind(ops: Iterable[tuple[str, str]]) -> str:
    """Classify a graph by its ``(domain, op_type)`` pairs: weight-only, dynamic, contrib, qdq or none.

    The first three are operators TensorRT's ONNX parser does not know; they win over Q/DQ nodes.
    """
    op_set = set(ops)
    types = {op for _, op in op_set}
    if types & WEIGHT_ONLY_OPS:
        return "weight-only"
    if types & DYNAMIC_QUANT_OPS:
        return "dynamic"
    if any(domain == CONTRIB_DOMAIN for domain, _ in op_set):
        return "contrib"
    if any(domain in DEFAULT_DOMAINS and op in QDQ_OPS for domain, op in op_set):
        return "qdq"
    return "none"


def onnx_op_types(path: Path) -> frozenset[tuple[str, str]] | None:
    """The ``(domain, op_type)`` pairs of an ONNX file, its local functions and subgraphs; None without ``onnx``.

    External data is not loaded, so this is cheap even for a decoder with large weights.
    """
    try:
        import onnx
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for a broken file
        raise InputError(f"{path} is not a readable ONNX model: {exc}") from exc
    found: set[tuple[str, str]] = set()
    for node in _walk_nodes([*model.graph.node, *(n for f in model.functions for n in f.node)]):
        found.add((node.domain or "", node.op_type))
    return frozenset(found)


def _walk_nodes(nodes: Iterable[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.HasField("g") else []
            for graph in [*subgraphs, *attr.graphs]:
                yield from _walk_nodes(graph.node)


def graph_precision(graph: BundleGraph) -> GraphPrecision:
    """The graph's declared precision and its quantization kind read from its operators."""
    ops = onnx_op_types(graph.path)
    kind = "unknown" if ops is None else quantization_kind(ops)
    if ops is None:
        log.info("onnx is not installed: the operators of %s were not inspected", graph.path.name)
    return GraphPrecision(graph.name, graph.precision, kind)
