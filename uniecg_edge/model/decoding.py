"""Token-by-token decoding over a transformers causal LM fed with ``inputs_embeds`` and a KV cache.

The model chooses generation by emitting ``[ECG_0]``: the remaining ``[ECG_1..K-1]`` are then fed in turn, the
last-layer hidden state at each of the K positions is collected, and decoding stops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..token_flow import TokenFlow

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class DecodeResult:
    token_ids: list[int]
    ecg_token_states: torch.Tensor | None  # (K, H) when the model emitted the [ECG] tokens
    stop_reason: str  # "eos" | "stop_token" | "ecg_tokens" | "max_new_tokens" (token_flow)
    prefill_s: float = 0.0
    decode_s: list[float] = field(default_factory=list)  # one entry per decode step


def _pick(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
    if temperature <= 0.0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


@torch.no_grad()
def decode(
    llm: PreTrainedModel,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    gen_token_ids: list[int],
    temperature: float = 0.0,
    seed: int = 0,
    stop_token_ids: tuple[int, ...] = (),
) -> DecodeResult:
    """Greedy (``temperature`` 0) or seeded sampling for one sequence (batch 1)."""
    if inputs_embeds.shape[0] != 1:
        raise ValueError("decode() handles one sequence at a time")
    embed = llm.get_input_embeddings()
    generator = torch.Generator().manual_seed(seed) if temperature > 0 else None

    start = time.perf_counter()
    out = llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
              use_cache=True, output_hidden_states=True)
    result = DecodeResult(token_ids=[], ecg_token_states=None, stop_reason="max_new_tokens",
                          prefill_s=time.perf_counter() - start)
    past = out.past_key_values
    flow = TokenFlow(max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, gen_token_ids=gen_token_ids,
                     stop_token_ids=stop_token_ids)
    next_id = _pick(out.logits[0, -1], temperature, generator)
    position = int(position_ids[0, -1].item())
    mask = attention_mask
    states: list[torch.Tensor] = []
    while (token := flow.admit(next_id)) is not None:
        position += 1
        mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
        step_start = time.perf_counter()
        out = llm(inputs_embeds=embed(torch.tensor([[token]])), attention_mask=mask,
                  position_ids=torch.tensor([[position]]), past_key_values=past, use_cache=True,
                  output_hidden_states=flow.collecting)
        result.decode_s.append(time.perf_counter() - step_start)
        past = out.past_key_values
        if flow.collecting:
            states.append(out.hidden_states[-1][0, -1])
            if flow.collected():
                result.ecg_token_states = torch.stack(states)
                break
            continue
        next_id = _pick(out.logits[0, -1], temperature, generator)
    result.token_ids, result.stop_reason = flow.token_ids, flow.stop_reason
    return result
