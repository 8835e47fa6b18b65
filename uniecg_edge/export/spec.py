"""Graph specs: what one exported ONNX graph is (in the spirit of optimum's ``OnnxConfig``).

A :class:`GraphSpec` names a graph, builds the torch module that is exported (its *wrapper*), declares the
inputs and outputs with their dynamic axes, makes example inputs for the exporter (batch >= 2, edge-facts §3)
and real inputs for the parity check, and gives the fp32 tolerance and the TensorRT profile (min/opt/max).
Specs register by name in :data:`GRAPH_SPECS`; ``uniecg_edge.export.specs`` holds one small module per graph.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..model.uniecg import UniEcgModel
    from .parity import RealInputs

EXAMPLE_BATCH = 2  # batch 1 example inputs make dynamo specialise the batch axis (edge-facts §3)
PROFILE_BATCH = (1, 1, 4)  # TensorRT profile (min, opt, max) of every batch axis


@dataclass(frozen=True)
class Axis:
    """A named dynamic axis: export bounds, the size of the example inputs, and the profile (min, opt, max).

    ``auto`` axes are left to the exporter (``Dim.AUTO``): used for the decoder mask, whose length is
    past + seq and cannot be written as an independent dimension.
    """

    name: str
    example: int
    max: int
    auto: bool = False


AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("batch", EXAMPLE_BATCH, 64),
        Axis("seq", 5, 2048),
        Axis("past", 3, 4096),
        Axis("total_seq", 8, 6144, auto=True),
    )
}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, numpy dtype name, shape (ints are static, strings name an axis)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    def example_shape(self) -> tuple[int, ...]:
        return tuple(AXES[d].example if isinstance(d, str) else d for d in self.shape)


class GraphSpec(abc.ABC):
    """One exported graph. Subclasses set ``name`` and ``tolerance`` and implement the abstract methods."""

    name: ClassVar[str]
    tolerance: ClassVar[float]  # max |ONNX - torch| at fp32 on real inputs
    description: ClassVar[str] = ""

    @property
    def file_name(self) -> str:
        return f"{self.name}.onnx"

    @abc.abstractmethod
    def wrapper(self, model: UniEcgModel) -> nn.Module:
        """The torch module exported; its positional inputs follow :meth:`inputs` (a ``*args`` tail is allowed)."""

    @abc.abstractmethod
    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        """Graph inputs, in the wrapper's argument order."""

    @abc.abstractmethod
    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        """Graph outputs, in the wrapper's return order."""

    @abc.abstractmethod
    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        """``(case label, inputs)`` pairs built from real ECGs, for the parity check."""

    def example_inputs(self, model: UniEcgModel) -> tuple[torch.Tensor, ...]:
        """Inputs for the exporter: random floats, small non-negative integers, at the axes' example sizes."""
        import torch

        generator = torch.Generator().manual_seed(0)
        tensors = []
        for spec in self.inputs(model):
            shape = spec.example_shape()
            if spec.dtype == "int64":
                tensors.append(torch.randint(0, 4, shape, generator=generator, dtype=torch.long))
            else:
                tensors.append(torch.randn(shape, generator=generator))
        return tuple(tensors)

    def profile(self, model: UniEcgModel) -> dict[str, dict[str, list[int]]]:
        """TensorRT optimisation profile per input; the default covers the batch axis only."""
        return {spec.name: profile_shapes(spec.shape, {}) for spec in self.inputs(model)}

    def dynamic_shapes(self, model: UniEcgModel, module: nn.Module) -> tuple[Any, ...]:
        """``torch.export`` dynamic shapes that mirror the wrapper's signature (a ``*args`` tail becomes a tuple)."""
        from torch.export import Dim

        dims: dict[str, Any] = {}

        def dim(axis: str) -> Any:
            spec = AXES[axis]
            if spec.auto:
                return Dim.AUTO
            if axis not in dims:
                dims[axis] = Dim(axis, max=spec.max)
            return dims[axis]

        per_input = [
            {i: dim(d) for i, d in enumerate(spec.shape) if isinstance(d, str)} or None for spec in self.inputs(model)
        ]
        params = list(inspect.signature(module.forward).parameters.values())
        fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            return (*per_input[: len(fixed)], tuple(per_input[len(fixed) :]))
        return tuple(per_input)

    def manifest_entry(self, model: UniEcgModel) -> dict[str, Any]:
        """The spec's part of the manifest's graph entry (inputs, outputs, profile)."""
        return {
            "description": self.description,
            "inputs": [s.to_dict() for s in self.inputs(model)],
            "outputs": [s.to_dict() for s in self.outputs(model)],
            "profile": self.profile(model),
        }


def profile_shapes(shape: Sequence[int | str], axes: dict[str, tuple[int, int, int]]) -> dict[str, list[int]]:
    """min/opt/max shapes for ``shape`` given (min, opt, max) per named axis; the batch axis is implied."""
    ranges = {"batch": PROFILE_BATCH, **axes}
    return {key: [ranges[d][k] if isinstance(d, str) else int(d) for d in shape]
            for k, key in enumerate(("min", "opt", "max"))}


GRAPH_SPECS: Registry[GraphSpec] = Registry("graph")


def register_spec(cls: type[GraphSpec]) -> type[GraphSpec]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    GRAPH_SPECS.add(cls.name, cls())
    return cls

# The order graphs are exported, checked and listed in (the understanding path first).
GRAPH_ORDER: tuple[str, ...] = (
    "ecg_encoder", "embed_tokens", "decoder", "gen_head", "unet_cond", "unet", "vae_decoder",
)


def graph_specs(names: Sequence[str] | None = None) -> list[GraphSpec]:
    """The registered specs in export order (all, or the ``names`` given; unknown names raise ``ConfigError``)."""
    from . import specs  # noqa: F401 - registers the built-in specs

    chosen = GRAPH_ORDER if names is None else tuple(names)
    return [GRAPH_SPECS.get(name) for name in chosen]
