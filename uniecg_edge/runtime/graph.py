"""A runnable graph as the runtime's loops see it: named numpy inputs and outputs, whatever engine runs it.

The token loop (:mod:`.generation`) and the diffusion loop (:mod:`.diffusion`) only use :class:`Graph` and
:class:`KvDecoder`, so the onnxruntime, tensorrt and torch backends (:mod:`.backends`) share them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: its name, numpy dtype and shape (ints, or names / None for dynamic axes)."""

    name: str
    dtype: Any  # a numpy scalar type
    shape: tuple[int | str | None, ...]


@runtime_checkable
class Graph(Protocol):
    """One runnable graph."""

    name: str

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        """Inputs in the graph's order."""
        ...

    @property
    def outputs(self) -> Sequence[TensorInfo]:
        """Outputs in the graph's order."""
        ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for inputs by name (cast to the declared dtypes)."""
        ...


class KvDecoder(Protocol):
    """The decoder graph with its KV cache kept by the backend (host arrays, or device buffers)."""

    def prefill(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
                position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the prompt with an empty cache; the last position's logits (V,) and hidden state (H,)."""
        ...

    def step(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
             position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run one more token against the cache; its logits (V,) and hidden state (H,)."""
        ...


# graph input / output dtype names in the manifest and in onnxruntime, as numpy types
DTYPES: dict[str, Any] = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64, "int32": np.int32,
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32,
}


def cast_feeds(inputs: Sequence[TensorInfo], feeds: Mapping[str, np.ndarray], graph: str) -> dict[str, np.ndarray]:
    """``feeds`` as C-contiguous arrays of the declared dtypes; a missing or unknown input raises ``ValueError``."""
    names = [i.name for i in inputs]
    missing = [n for n in names if n not in feeds]
    extra = sorted(set(feeds) - set(names))
    if missing or extra:
        raise ValueError(f"graph {graph}: missing inputs {missing}, unknown inputs {extra} (takes {names})")
    return {i.name: np.ascontiguousarray(feeds[i.name], dtype=i.dtype) for i in inputs}


def call_positional(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run ``graph`` with inputs in its declared order; outputs in declared order."""
    if len(inputs) != len(graph.inputs):
        names = ", ".join(i.name for i in graph.inputs)
        raise ValueError(f"graph takes {len(graph.inputs)} inputs ({names}), got {len(inputs)}")
    out = graph.run({info.name: x for info, x in zip(graph.inputs, inputs, strict=True)})
    return [out[o.name] for o in graph.outputs]
