"""Greedy decoding through the exported graphs with onnxruntime and numpy only (no torch), for the export checks.

The pieces are the on-device runtime's (:mod:`uniecg_edge.runtime`): onnxruntime sessions as graphs
(``GraphRunner``), the decoder with explicit past arrays (``OnnxDecoder``), the prompt splice and the KV-cache
token loop, which takes the same steps as :func:`uniecg_edge.model.decoding.decode`. This module keeps the names
the exporter, the quantization gates and their tests use, and ``OnnxGraphs`` (a bundle folder's understanding
graphs, usable before its manifest exists).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.backends.ort_backend import OrtGraph, make_session
from ..runtime.generation import DecodeResult, DecoderGraph, HostKvDecoder, decode_tokens, embedder
from ..runtime.graph import DTYPES
from ..runtime.prompt import encode_prompt, splice_ecg_embeddings

__all__ = [
    "ORT_TO_NUMPY", "GraphRunner", "GreedyResult", "OnnxDecoder", "OnnxGraphs", "encode_prompt", "greedy_decode",
    "make_session", "splice_ecg_embeddings",
]

ORT_TO_NUMPY: dict[str, Any] = {name: dtype for name, dtype in DTYPES.items() if name.startswith("tensor(")}
GraphRunner = OrtGraph  # one session; positional call in graph order, or .run(feeds by name)
GreedyResult = DecodeResult


class OnnxDecoder(DecoderGraph):
    """The decoder graph with explicit past arrays: ``decoder(embeds, mask, positions, past)`` ->
    ``(logits, hidden, present list)``; ``runner`` is its session (positional call, graph order)."""

    @property
    def runner(self) -> OrtGraph:
        assert isinstance(self.graph, OrtGraph)
        return self.graph


def greedy_decode(decoder: DecoderGraph, embed_tokens: OrtGraph, inputs_embeds: np.ndarray,
                  attention_mask: np.ndarray, position_ids: np.ndarray, *, max_new_tokens: int,
                  eos_token_id: int, gen_token_ids: Sequence[int]) -> DecodeResult:
    """Greedy decoding of one sequence (batch 1), step for step as the torch reference decodes."""
    return decode_tokens(HostKvDecoder(decoder.graph), embedder(embed_tokens), inputs_embeds, attention_mask,
                         position_ids, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
                         gen_token_ids=gen_token_ids)


class OnnxGraphs:
    """The understanding-path graphs of a bundle folder (ecg_encoder, embed_tokens, decoder) and its config."""

    def __init__(self, runners: Mapping[str, OrtGraph], config: Mapping[str, Any]) -> None:
        self.runners = dict(runners)
        self.config = dict(config)
        self.decoder = OnnxDecoder(self.runners["decoder"])

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], config: Mapping[str, Any],
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> OnnxGraphs:
        root = Path(directory)
        names = ("ecg_encoder", "embed_tokens", "decoder")
        return cls({n: OrtGraph.from_file(root / f"{n}.onnx", providers=providers) for n in names}, config)

    def respond(self, prompt_ids: np.ndarray, ecg: np.ndarray | None = None, *,
                max_new_tokens: int | None = None) -> DecodeResult:
        """Greedy answer to ``prompt_ids`` (1, S), with ``ecg`` (12, 5000) spliced at ``<ecg>`` when given."""
        (embeds,) = self.runners["embed_tokens"](prompt_ids)
        if ecg is not None:
            (ecg_embeds,) = self.runners["ecg_encoder"](np.asarray(ecg, np.float32)[None])
            embeds, mask, positions = splice_ecg_embeddings(prompt_ids, embeds, ecg_embeds,
                                                            int(self.config["ecg_token_id"]))
        else:
            mask = np.ones(prompt_ids.shape, np.int64)
            positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
        return greedy_decode(
            self.decoder, self.runners["embed_tokens"], embeds, mask, positions,
            max_new_tokens=int(max_new_tokens or self.config["max_new_tokens"]),
            eos_token_id=int(self.config["eos_token_id"]), gen_token_ids=self.config["gen_token_ids"],
        )
