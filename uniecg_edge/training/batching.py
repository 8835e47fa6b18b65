"""Token batches for the two tasks, laid out exactly as :class:`~uniecg_edge.model.pipeline.TorchPipeline` feeds
the model at run time:

* interpret: ``<s>`` + prompt (``PromptConfig.interpret_prompt()``, with ``<ecg>``) + " " + report + ``</s>``;
  the loss is on the answer tokens and ``</s>`` only;
* generate: ``<s>`` + ``PromptConfig.generate_prompt(request)`` + ``[ECG_0] .. [ECG_K-1]``; the loss is on the
  [ECG] tokens (the model's choice to generate), and their hidden states feed the generation head.

Rows are right-padded with ``<pad>`` (mask 0, label -100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..model.splice import expand_ids_for_splice, splice_ecg_embeddings
from ..model.tokenizer import ECG_PLACEHOLDER, ecg_gen_tokens
from ..model.uniecg import PromptConfig

IGNORE = -100


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # (B, S)
    attention_mask: torch.Tensor  # (B, S)
    labels: torch.Tensor  # (B, S), IGNORE where no loss
    ecg: torch.Tensor | None = None  # (B, 12, 5000) for interpret batches
    gen_positions: torch.Tensor | None = None  # (B, K) positions of [ECG_i] for generate batches


class Batcher:
    """Tokenizes prompts and answers with the run's tokenizer and prompt format."""

    def __init__(self, tokenizer: Any, num_ecg_tokens: int, prompt: PromptConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.prompt = prompt or PromptConfig()
        self.bos = int(tokenizer.bos_token_id)
        self.eos = int(tokenizer.eos_token_id)
        self.pad = int(tokenizer.pad_token_id)
        self.ecg_token_id = int(tokenizer.convert_tokens_to_ids(ECG_PLACEHOLDER))
        self.gen_ids = [int(tokenizer.convert_tokens_to_ids(t)) for t in ecg_gen_tokens(num_ecg_tokens)]
        self.interpret_ids = [self.bos, *self._encode(self.prompt.interpret_prompt())]

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def answer_ids(self, report: str) -> list[int]:
        return [*self._encode(" " + report), self.eos]

    def _pad(self, rows: list[list[int]], label_rows: list[list[int]]) -> tuple[torch.Tensor, ...]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, (row, lab) in enumerate(zip(rows, label_rows, strict=True)):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
            labels[i, : len(lab)] = torch.tensor(lab)
        return ids, mask, labels

    def interpret(self, ecgs: Sequence[np.ndarray], reports: Sequence[str],
                  questions: Sequence[str | None] | None = None) -> TokenBatch:
        """``questions[i]`` replaces the default question of row i (None keeps it), e.g. a grounded one."""
        rows, label_rows = [], []
        for i, report in enumerate(reports):
            question = None if questions is None else questions[i]
            prompt = self.interpret_ids if question is None else [
                self.bos, *self._encode(self.prompt.interpret_prompt(question))]
            answer = self.answer_ids(report)
            rows.append(prompt + answer)
            label_rows.append([IGNORE] * len(prompt) + answer)
        ids, mask, labels = self._pad(rows, label_rows)
        ecg = torch.from_numpy(np.stack([np.asarray(e, dtype=np.float32) for e in ecgs]))
        return TokenBatch(ids, mask, labels, ecg=ecg)

    def generate(self, requests: Sequence[str]) -> TokenBatch:
        rows, label_rows, positions = [], [], []
        for request in requests:
            prompt = [self.bos, *self._encode(self.prompt.generate_prompt(request))]
            rows.append(prompt + self.gen_ids)
            label_rows.append([IGNORE] * len(prompt) + self.gen_ids)
            positions.append(list(range(len(prompt), len(prompt) + len(self.gen_ids))))
        ids, mask, labels = self._pad(rows, label_rows)
        return TokenBatch(ids, mask, labels, gen_positions=torch.tensor(positions, dtype=torch.long))


def interpret_forward(encoder: torch.nn.Module, projector: torch.nn.Module, llm: Any, batch: TokenBatch,
                      ecg_token_id: int) -> tuple[Any, torch.Tensor]:
    """The LLM output (with ``.loss`` on the answer tokens) and the encoder tokens of an interpret batch."""
    assert batch.ecg is not None
    tokens = encoder(batch.ecg)
    ecg_embeds = projector(tokens)
    embeds = llm.get_input_embeddings()(batch.input_ids)
    embeds, mask, positions = splice_ecg_embeddings(batch.input_ids, embeds, ecg_embeds, ecg_token_id,
                                                    batch.attention_mask)
    labels = expand_ids_for_splice(batch.labels, batch.input_ids, ecg_token_id, ecg_embeds.shape[1], IGNORE)
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, labels=labels)
    return out, tokens


def generate_forward(llm: Any, batch: TokenBatch) -> tuple[Any, torch.Tensor]:
    """The LLM output (``.loss`` on the [ECG] tokens) and the last-layer states at the K [ECG] tokens (B, K, H)."""
    assert batch.gen_positions is not None
    mask = batch.attention_mask
    positions = (torch.cumsum(mask, dim=1) - 1).clamp(min=0)
    out = llm(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions, labels=batch.labels,
              output_hidden_states=True)
    last = out.hidden_states[-1]
    index = batch.gen_positions.unsqueeze(-1).expand(-1, -1, last.shape[-1])
    return out, torch.gather(last, 1, index)
