"""``gen_head``: ecg_token_states (B, K, H) (last-layer states at the [ECG_i] tokens) -> cond (B, 1, D)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor, nn

from ..spec import GraphSpec, TensorSpec, register_spec

if TYPE_CHECKING:
    from ...model.uniecg import UniEcgModel
    from ..parity import RealInputs


class GenHeadModule(nn.Module):
    def __init__(self, model: UniEcgModel) -> None:
        super().__init__()
        self.head = model.gen_head

    def forward(self, ecg_token_states: Tensor) -> Tensor:
        return self.head(ecg_token_states)


@register_spec
class GenHeadSpec(GraphSpec):
    name = "gen_head"
    tolerance = 1e-4
    description = "generation head: [ECG]-token hidden states to the diffusion condition vector"

    def wrapper(self, model: UniEcgModel) -> nn.Module:
        return GenHeadModule(model).eval()

    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        cfg = model.gen_head.config
        return [TensorSpec("ecg_token_states", "float32", ("batch", model.config.num_ecg_tokens, cfg.hidden_dim))]

    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        return [TensorSpec("cond", "float32", ("batch", 1, model.gen_head.config.cond_dim))]

    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        return [("[ECG]-token states after the ECG prompt", (real.token_states,))]
