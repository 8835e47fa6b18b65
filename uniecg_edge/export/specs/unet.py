"""``unet``: latent (B, 4, L), timestep (B,) int64, cond_term.{j} (B, L_j, C_j) -> noise estimate (B, 4, L)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor, nn

from ..spec import GraphSpec, TensorSpec, register_spec
from .unet_cond import cond_term_specs

if TYPE_CHECKING:
    from ...model.uniecg import UniEcgModel
    from ..parity import RealInputs


class UNetModule(nn.Module):
    def __init__(self, model: UniEcgModel) -> None:
        super().__init__()
        self.unet = model.unet

    def forward(self, latent: Tensor, timestep: Tensor, *cond_terms: Tensor) -> Tensor:
        return self.unet(latent, timestep, cond_terms)


@register_spec
class UNetSpec(GraphSpec):
    name = "unet"
    tolerance = 1e-4
    description = "UNet denoiser: noise estimate for a latent at a timestep under precomputed condition terms"

    def wrapper(self, model: UniEcgModel) -> nn.Module:
        return UNetModule(model).eval()

    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        cfg = model.unet.config
        return [
            TensorSpec("latent", "float32", ("batch", cfg.n_channels, cfg.latent_length)),
            TensorSpec("timestep", "int64", ("batch",)),
            *cond_term_specs(model),
        ]

    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        cfg = model.unet.config
        return [TensorSpec("noise", "float32", ("batch", cfg.n_channels, cfg.latent_length))]

    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        return [(f"noise latent at t={int(t[0])}", (real.noise_latent, t, *real.terms)) for t in real.timesteps]
