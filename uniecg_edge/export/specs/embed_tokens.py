"""``embed_tokens``: input_ids (B, S) int64 -> inputs_embeds (B, S, H) (the LLM's input embedding table)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
from torch import Tensor, nn

from ..runtime_config import llm_geometry
from ..spec import GraphSpec, TensorSpec, register_spec

if TYPE_CHECKING:
    from ...model.uniecg import UniEcgModel
    from ..parity import RealInputs


class EmbedTokensModule(nn.Module):
    def __init__(self, model: UniEcgModel) -> None:
        super().__init__()
        llm: Any = model.llm  # a transformers causal LM
        self.embed = cast(nn.Module, llm.get_input_embeddings())

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.embed(input_ids)


@register_spec
class EmbedTokensSpec(GraphSpec):
    name = "embed_tokens"
    tolerance = 1e-6
    description = "token ids to input embeddings (a table lookup: exact)"

    def wrapper(self, model: UniEcgModel) -> nn.Module:
        return EmbedTokensModule(model).eval()

    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        return [TensorSpec("input_ids", "int64", ("batch", "seq"))]

    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        return [TensorSpec("inputs_embeds", "float32", ("batch", "seq", llm_geometry(model.llm).hidden_size))]

    def profile(self, model: UniEcgModel) -> dict[str, dict[str, list[int]]]:
        from ..spec import profile_shapes

        context = llm_geometry(model.llm).max_positions
        return {"input_ids": profile_shapes(("batch", "seq"), {"seq": (1, 128, context)})}

    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        return [("interpretation prompt", (real.prompt_ids,)), ("generated token", (real.next_ids,))]
