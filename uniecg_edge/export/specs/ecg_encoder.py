"""``ecg_encoder``: ecg (B, 12, 5000) mV -> ecg_embeds (B, N, H) [EcgEncoder + EcgProjector]."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor, nn

from ..spec import GraphSpec, TensorSpec, register_spec

if TYPE_CHECKING:
    from ...model.uniecg import UniEcgModel
    from ..parity import RealInputs


class EcgEncoderModule(nn.Module):
    def __init__(self, model: UniEcgModel) -> None:
        super().__init__()
        self.encoder = model.ecg_encoder
        self.projector = model.projector

    def forward(self, ecg: Tensor) -> Tensor:
        return self.projector(self.encoder(ecg))


@register_spec
class EcgEncoderSpec(GraphSpec):
    name = "ecg_encoder"
    tolerance = 1e-4
    description = "ECG encoder + projector: 12-lead ECG to ECG embeddings in the LLM width"

    def wrapper(self, model: UniEcgModel) -> nn.Module:
        return EcgEncoderModule(model).eval()

    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        cfg = model.ecg_encoder.config
        return [TensorSpec("ecg", "float32", ("batch", cfg.n_leads, cfg.seq_length))]

    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        width = model.projector.config.out_dim
        return [TensorSpec("ecg_embeds", "float32", ("batch", model.ecg_encoder.num_tokens, width))]

    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        return [("ECG", (real.ecg,))]
