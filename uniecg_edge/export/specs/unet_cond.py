"""``unet_cond``: cond (B, 1, D), sex, age, hr (B, 1, 1) -> cond_term.{j} (B, L_j, C_j), once per sample.

L_j is 1 for a DiffuSETS UNet and the block's latent length for one with a beat clock (the regular clock of the
``hr`` input is computed inside this graph, so the inputs are the same either way)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor, nn

from ..runtime_config import cond_term_lengths, cond_term_widths
from ..spec import GraphSpec, TensorSpec, register_spec

if TYPE_CHECKING:
    from ...model.uniecg import UniEcgModel
    from ..parity import RealInputs


def cond_term_names(count: int) -> list[str]:
    return [f"cond_term.{j}" for j in range(count)]


def cond_term_specs(model: UniEcgModel) -> list[TensorSpec]:
    """``cond_term.{j}`` (batch, L_j, C_j): outputs of ``unet_cond``, inputs of ``unet``."""
    widths, lengths = cond_term_widths(model), cond_term_lengths(model)
    return [TensorSpec(name, "float32", ("batch", length, width))
            for name, length, width in zip(cond_term_names(len(widths)), lengths, widths, strict=True)]


class UNetConditionModule(nn.Module):
    def __init__(self, model: UniEcgModel) -> None:
        super().__init__()
        self.unet = model.unet

    def forward(self, cond: Tensor, sex: Tensor, age: Tensor, hr: Tensor) -> tuple[Tensor, ...]:
        return self.unet.condition_terms(cond, sex, age, hr)


@register_spec
class UNetCondSpec(GraphSpec):
    name = "unet_cond"
    tolerance = 1e-4
    description = "UNet condition terms from the condition vector and the patient's sex, age and heart rate"

    def wrapper(self, model: UniEcgModel) -> nn.Module:
        return UNetConditionModule(model).eval()

    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        scalar = ("batch", 1, 1)
        return [
            TensorSpec("cond", "float32", ("batch", 1, model.unet.config.cond_dim)),
            TensorSpec("sex", "float32", scalar),
            TensorSpec("age", "float32", scalar),
            TensorSpec("hr", "float32", scalar),
        ]

    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        return cond_term_specs(model)

    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        return [("condition + the records' sex, age and heart rate", (real.cond, *real.patient))]
