"""``vae_decoder``: latent (B, 4, L) -> ecg (B, 12, 1024) mV at 102.4 Hz."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor, nn

from ..spec import GraphSpec, TensorSpec, register_spec

if TYPE_CHECKING:
    from ...model.uniecg import UniEcgModel
    from ..parity import RealInputs


class VaeDecoderModule(nn.Module):
    def __init__(self, model: UniEcgModel) -> None:
        super().__init__()
        self.decoder = model.vae_decoder

    def forward(self, latent: Tensor) -> Tensor:
        return self.decoder(latent)


@register_spec
class VaeDecoderSpec(GraphSpec):
    name = "vae_decoder"
    tolerance = 1e-3
    description = "VAE decoder: latent to a 12-lead ECG at 102.4 Hz"

    def wrapper(self, model: UniEcgModel) -> nn.Module:
        return VaeDecoderModule(model).eval()

    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        cfg = model.unet.config
        return [TensorSpec("latent", "float32", ("batch", cfg.n_channels, cfg.latent_length))]

    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        cfg = model.vae_decoder.config
        return [TensorSpec("ecg", "float32", ("batch", cfg.n_leads, cfg.n_samples))]

    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        return [("latent sampled from the records' condition", (real.sampled_latent,))]
