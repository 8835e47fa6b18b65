"""``decoder``: the causal LM with a KV cache, fed with ``inputs_embeds`` (edge-facts §1.2).

Inputs and outputs follow the optimum / onnxruntime-genai names: inputs_embeds (B, S, H), attention_mask
(B, P+S), position_ids (B, S), past_key_values.{i}.key|value (B, kv_heads, P, head_dim) -> logits (B, S, V),
hidden_states (B, S, H) (last layer), present.{i}.key|value (B, kv_heads, P+S, head_dim). Past length 0 is the
prefill. Works for any transformers causal LM that takes a ``DynamicCache`` (Llama, Qwen2, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor, nn

from ..runtime_config import llm_geometry
from ..spec import AXES, GraphSpec, TensorSpec, profile_shapes, register_spec

if TYPE_CHECKING:
    from ...model.uniecg import UniEcgModel
    from ..parity import RealInputs


def past_names(num_layers: int) -> list[str]:
    return [f"past_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


def present_names(num_layers: int) -> list[str]:
    return [f"present.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


class DecoderWithPast(nn.Module):
    """Wraps a causal LM: flat past tensors in, logits + last hidden state + flat present tensors out."""

    def __init__(self, llm: Any) -> None:
        super().__init__()
        self.llm = llm
        self.num_layers = llm_geometry(llm).num_layers

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, position_ids: Tensor,
                *past: Tensor) -> tuple[Tensor, ...]:
        from transformers import DynamicCache

        cache = DynamicCache()
        for layer in range(self.num_layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                       past_key_values=cache, use_cache=True, output_hidden_states=True)
        present = out.past_key_values
        flat: list[Tensor] = []
        for layer in range(self.num_layers):
            flat += [present.layers[layer].keys, present.layers[layer].values]
        return (out.logits, out.hidden_states[-1], *flat)


@register_spec
class DecoderSpec(GraphSpec):
    name = "decoder"
    tolerance = 1e-4
    description = "causal LM with KV cache over input embeddings; logits, last hidden state, present KV"

    def wrapper(self, model: UniEcgModel) -> nn.Module:
        return DecoderWithPast(model.llm).eval()

    def inputs(self, model: UniEcgModel) -> list[TensorSpec]:
        g = llm_geometry(model.llm)
        kv = ("batch", g.num_kv_heads, "past", g.head_dim)
        return [
            TensorSpec("inputs_embeds", "float32", ("batch", "seq", g.hidden_size)),
            TensorSpec("attention_mask", "int64", ("batch", "total_seq")),
            TensorSpec("position_ids", "int64", ("batch", "seq")),
            *(TensorSpec(name, "float32", kv) for name in past_names(g.num_layers)),
        ]

    def outputs(self, model: UniEcgModel) -> list[TensorSpec]:
        g = llm_geometry(model.llm)
        kv = ("batch", g.num_kv_heads, "total_seq", g.head_dim)
        return [
            TensorSpec("logits", "float32", ("batch", "seq", g.vocab_size)),
            TensorSpec("hidden_states", "float32", ("batch", "seq", g.hidden_size)),
            *(TensorSpec(name, "float32", kv) for name in present_names(g.num_layers)),
        ]

    def example_inputs(self, model: UniEcgModel) -> tuple[Tensor, ...]:
        import torch

        tensors = list(super().example_inputs(model))
        batch, seq, past = AXES["batch"].example, AXES["seq"].example, AXES["past"].example
        tensors[1] = torch.ones((batch, past + seq), dtype=torch.long)
        tensors[2] = torch.arange(past, past + seq, dtype=torch.long).expand(batch, seq).contiguous()
        return tuple(tensors)

    def profile(self, model: UniEcgModel) -> dict[str, dict[str, list[int]]]:
        context = llm_geometry(model.llm).max_positions
        axes = {"seq": (1, 128, context), "past": (0, 128, context - 1), "total_seq": (1, 256, context)}
        return {spec.name: profile_shapes(spec.shape, axes) for spec in self.inputs(model)}

    def real_inputs(self, real: RealInputs) -> list[tuple[str, tuple[np.ndarray, ...]]]:
        return [("prefill, empty past", real.prefill_inputs), ("decode step with past", real.decode_step_inputs)]
