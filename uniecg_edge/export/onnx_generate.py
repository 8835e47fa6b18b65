"""Greedy decoding through the exported graphs with onnxruntime and numpy only (no torch).

``embed_tokens`` + ``ecg_encoder`` + a host-side splice at ``<ecg>`` + ``decoder`` with its KV cache, in the same
steps as :func:`uniecg_edge.model.decoding.decode`: when the model emits ``[ECG_0]`` the remaining ``[ECG_i]``
are fed in turn, their last-layer hidden states are collected and decoding stops. The parity check uses it;
the on-device runtime builds on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ORT_TO_NUMPY: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def make_session(path: str | os.PathLike[str], providers: Sequence[str] = ("CPUExecutionProvider",),
                 intra_op_threads: int | None = None) -> Any:
    """An onnxruntime session for ``path`` on ``providers`` (the first one must really be used)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))


class GraphRunner:
    """Runs one session with positional numpy inputs (cast to the graph's declared types), in graph order."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.input_dtypes = [ORT_TO_NUMPY.get(i.type, np.float32) for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **session_kwargs: Any) -> GraphRunner:
        return cls(make_session(path, **session_kwargs))

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"graph takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                             f"got {len(inputs)}")
        feeds = {name: np.ascontiguousarray(x, dtype=dtype)
                 for name, dtype, x in zip(self.input_names, self.input_dtypes, inputs, strict=True)}
        return list(self.session.run(self.output_names, feeds))


def encode_prompt(tokenizer_file: str | os.PathLike[str], prompt: str, bos_token_id: int | None) -> np.ndarray:
    """(1, S) int64 token ids of ``prompt`` (no template tokens), with ``bos_token_id`` prepended when set."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_file)).encode(prompt, add_special_tokens=False).ids
    if bos_token_id is not None:
        ids = [int(bos_token_id), *ids]
    return np.asarray([ids], dtype=np.int64)


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


class OnnxDecoder:
    """The ``decoder`` graph with its KV cache as a list of numpy arrays (``past_key_values.{i}.key|value``)."""

    def __init__(self, runner: GraphRunner) -> None:
        self.runner = runner
        past_inputs = [i for i in runner.session.get_inputs() if i.name.startswith("past_key_values.")]
        if not past_inputs:
            raise ValueError("not a decoder graph: no past_key_values.* inputs")
        self.num_layers = len(past_inputs) // 2
        self.kv_heads, self.head_dim = int(past_inputs[0].shape[1]), int(past_inputs[0].shape[3])
        self.past_dtype = ORT_TO_NUMPY.get(past_inputs[0].type, np.float32)

    def empty_past(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self.kv_heads, 0, self.head_dim)
        return [np.zeros(shape, self.past_dtype) for _ in range(2 * self.num_layers)]

    def __call__(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
                 past: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        outputs = self.runner(inputs_embeds, attention_mask, position_ids, *past)
        return outputs[0], outputs[1], outputs[2:]


@dataclass
class GreedyResult:
    token_ids: list[int]
    ecg_token_states: np.ndarray | None  # (K, H) when the model emitted the [ECG] tokens
    stop_reason: str  # "eos" | "ecg_tokens" | "max_new_tokens"
    prefill_s: float = 0.0
    decode_s: list[float] = field(default_factory=list)


def greedy_decode(decoder: OnnxDecoder, embed_tokens: GraphRunner, inputs_embeds: np.ndarray,
                  attention_mask: np.ndarray, position_ids: np.ndarray, *, max_new_tokens: int,
                  eos_token_id: int, gen_token_ids: Sequence[int]) -> GreedyResult:
    """Greedy decoding of one sequence (batch 1), step for step as the torch reference decodes."""
    if inputs_embeds.shape[0] != 1:
        raise ValueError("greedy_decode() handles one sequence at a time")
    gen = [int(t) for t in gen_token_ids]
    start = time.perf_counter()
    logits, hidden, past = decoder(inputs_embeds, attention_mask, position_ids, decoder.empty_past(1))
    result = GreedyResult(token_ids=[], ecg_token_states=None, stop_reason="max_new_tokens",
                          prefill_s=time.perf_counter() - start)
    next_id = int(np.argmax(logits[0, -1]))
    position = int(position_ids[0, -1])
    mask = attention_mask.astype(np.int64)
    states: list[np.ndarray] = []
    forced: list[int] = []
    while True:
        if not forced:
            if next_id == eos_token_id:
                result.stop_reason = "eos"
                break
            if len(result.token_ids) >= max_new_tokens:
                break
            if gen and next_id == gen[0]:
                forced = list(gen)
        if forced:
            next_id = forced.pop(0)
        result.token_ids.append(next_id)
        position += 1
        mask = np.concatenate([mask, np.ones((1, 1), np.int64)], axis=1)
        step_start = time.perf_counter()
        (embeds,) = embed_tokens(np.asarray([[next_id]], np.int64))
        logits, hidden, past = decoder(embeds, mask, np.asarray([[position]], np.int64), past)
        result.decode_s.append(time.perf_counter() - step_start)
        if gen and next_id in gen and (states or next_id == gen[0]):
            states.append(hidden[0, -1].astype(np.float32))
            if len(states) == len(gen):
                result.ecg_token_states = np.stack(states)
                result.stop_reason = "ecg_tokens"
                break
            continue
        next_id = int(np.argmax(logits[0, -1]))
    return result


class OnnxGraphs:
    """The understanding-path graphs of a bundle folder (ecg_encoder, embed_tokens, decoder) and its config."""

    def __init__(self, runners: Mapping[str, GraphRunner], config: Mapping[str, Any]) -> None:
        self.runners = dict(runners)
        self.config = dict(config)
        self.decoder = OnnxDecoder(self.runners["decoder"])

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], config: Mapping[str, Any],
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> OnnxGraphs:
        root = Path(directory)
        names = ("ecg_encoder", "embed_tokens", "decoder")
        return cls({n: GraphRunner.from_file(root / f"{n}.onnx", providers=providers) for n in names}, config)

    def respond(self, prompt_ids: np.ndarray, ecg: np.ndarray | None = None, *,
                max_new_tokens: int | None = None) -> GreedyResult:
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
