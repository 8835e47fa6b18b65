"""What every inference backend offers the runtime: named graphs (:mod:`..graph`) and its provenance.

A backend opens the graphs of one verified bundle (``onnxruntime`` sessions, ``tensorrt`` engines, or the torch
modules the graphs were exported from) and says which execution provider really runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ...registry import Registry
from ..graph import DTYPES, Graph, KvDecoder, TensorInfo, call_positional, cast_feeds

__all__ = [
    "BACKENDS", "DTYPES", "Backend", "BackendFactory", "BackendOptions", "Graph", "KvDecoder", "TensorInfo",
    "call_positional", "cast_feeds",
]

if TYPE_CHECKING:
    from ...export.bundle import Bundle


@runtime_checkable
class Backend(Protocol):
    """An opened bundle on one inference engine."""

    name: str

    @property
    def execution_provider(self) -> str:
        """What really runs the graphs (e.g. ``CPUExecutionProvider``, ``tensorrt-10.3 on Orin``)."""
        ...

    def graph(self, name: str) -> Graph:
        """The graph called ``name`` (opened on first use)."""
        ...

    def kv_decoder(self, graph: Graph, max_total_tokens: int) -> KvDecoder:
        """A cache-keeping decoder for the ``decoder`` graph, for sequences of at most ``max_total_tokens``."""
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance: backend, execution provider, and what was checked to choose it."""
        ...


@dataclass(frozen=True)
class BackendOptions:
    """How to open a backend. ``providers`` are onnxruntime execution providers (short or full names).

    ``allow_fallback``: True warns in one line and goes on when onnxruntime runs on another provider than the one
    asked for; False raises; None raises only for providers that were asked for explicitly.
    ``io_binding``: None uses it on GPU providers. ``model_dir``: the checkpoint for the torch backend.
    """

    providers: tuple[str, ...] | None = None
    allow_fallback: bool | None = None
    intra_op_threads: int | None = None
    io_binding: bool | None = None
    model_dir: Path | None = None
    device_id: int = 0


BackendFactory = Callable[["Bundle", BackendOptions], Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend")

