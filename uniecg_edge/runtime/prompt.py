"""Prompts for the exported graphs, host side: the bundle's templates, tokenisation, the ``<ecg>`` splice, text.

Uses the ``tokenizers`` library on the bundle's ``tokenizer.json`` (no transformers, no torch). Token ids and
splice positions are the torch pipeline's (:mod:`uniecg_edge.model.splice`), so the graphs see the same inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import BundleError
from ..model.tokenizer import ECG_PLACEHOLDER

TOKENIZER_FILE = "tokenizer.json"


def interpret_prompt(prompt_config: Mapping[str, Any], question: str | None = None) -> str:
    """The interpretation prompt of the bundle's ``config.json`` ``prompt`` table (``<ecg>`` where the ECG goes)."""
    return str(prompt_config["interpret_template"]).format(
        system=prompt_config["system"], ecg=ECG_PLACEHOLDER,
        question=question or prompt_config["interpret_question"])


def generate_prompt(prompt_config: Mapping[str, Any], request: str) -> str:
    return str(prompt_config["generate_template"]).format(system=prompt_config["system"], request=request)


def encode_prompt(tokenizer_file: str | os.PathLike[str], prompt: str, bos_token_id: int | None) -> np.ndarray:
    """(1, S) int64 token ids of ``prompt`` (no template tokens), with ``bos_token_id`` prepended when set."""
    return PromptCodec(tokenizer_file, bos_token_id).encode(prompt)


class PromptCodec:
    """Text <-> token ids with the bundle's tokenizer, as the torch pipeline does it."""

    def __init__(self, tokenizer_file: str | os.PathLike[str], bos_token_id: int | None,
                 hidden_token_ids: Iterable[int] = ()) -> None:
        self.path = Path(tokenizer_file)
        if not self.path.is_file():
            raise BundleError(f"{self.path}: tokenizer file missing (the runtime needs a fast tokenizer.json)")
        self.bos_token_id = None if bos_token_id is None else int(bos_token_id)
        self.hidden_token_ids = frozenset(int(t) for t in hidden_token_ids)

    @cached_property
    def tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.path))

    def encode(self, prompt: str) -> npt.NDArray[np.int64]:
        ids = self.tokenizer.encode(prompt, add_special_tokens=False).ids
        if self.bos_token_id is not None:
            ids = [self.bos_token_id, *ids]
        return np.asarray([ids], dtype=np.int64)

    def decode(self, token_ids: Iterable[int]) -> str:
        """The text of ``token_ids`` without the hidden ids ([ECG_i], end of sequence) and special tokens."""
        ids = [int(t) for t in token_ids if int(t) not in self.hidden_token_ids]
        return str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip()


def splice_ecg_embeddings(input_ids: np.ndarray, inputs_embeds: np.ndarray, ecg_embeds: np.ndarray,
                          ecg_token_id: int, attention_mask: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy twin of :func:`uniecg_edge.model.splice.splice_ecg_embeddings`: each row's one ``<ecg>`` embedding
    is replaced by its N ECG embeddings; returns embeds (B, S-1+N, H), mask (B, S-1+N) int64 and position ids
    (cumulative mask - 1, clamped at 0)."""
    batch, seq_len = input_ids.shape
    counts = (input_ids == ecg_token_id).sum(axis=1)
    if np.any(counts != 1):
        row = int(np.flatnonzero(counts != 1)[0])
        raise ValueError(f"row {row}: expected exactly one <ecg> placeholder (token id {ecg_token_id}), "
                         f"found {int(counts[row])}")
    num_ecg = ecg_embeds.shape[1]
    place = np.argmax(input_ids == ecg_token_id, axis=1)[:, None]  # (B, 1)
    j = np.arange(seq_len - 1 + num_ecg)[None, :]
    index = np.where(j < place, j, np.where(j < place + num_ecg, seq_len + (j - place), j - num_ecg + 1))
    source = np.concatenate([inputs_embeds, ecg_embeds.astype(inputs_embeds.dtype)], axis=1)
    embeds = np.take_along_axis(source, index[:, :, None], axis=1)
    mask_in = np.ones((batch, seq_len), np.int64) if attention_mask is None else attention_mask.astype(np.int64)
    mask = np.take_along_axis(np.concatenate([mask_in, np.ones((batch, num_ecg), np.int64)], axis=1), index, axis=1)
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int64)
    return embeds, mask, positions
