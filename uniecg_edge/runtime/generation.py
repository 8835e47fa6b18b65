"""Token generation over the ``decoder`` graph with a KV cache: prefill, then one token at a time.

The steps are those of :func:`uniecg_edge.model.decoding.decode` (the torch reference): the prompt (with the ECG
embeddings spliced in) is prefilled with an empty cache; each new token is embedded by ``embed_tokens`` and run
against the cache. When the model emits ``[ECG_0]`` the remaining ``[ECG_i]`` are fed in turn, the last-layer
hidden states at the K positions are collected and decoding stops. Greedy (temperature 0) or seeded sampling
with temperature and top-p; end-of-sequence and extra stop tokens; a limit on new tokens. The attention mask,
position and token buffers are allocated once per call; the cache lives where the backend keeps it
(:class:`HostKvDecoder`: host arrays handed from one step to the next; onnxruntime on a GPU: device buffers
through IO binding, :mod:`.backends.ort_iobinding`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..token_flow import TokenFlow
from .graph import Graph, KvDecoder

PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."
EMBEDS, MASK, POSITIONS = "inputs_embeds", "attention_mask", "position_ids"
LOGITS, HIDDEN = "logits", "hidden_states"


@dataclass(frozen=True)
class SamplingConfig:
    """Greedy when ``temperature`` is 0; otherwise softmax(logits / temperature) within the top-p mass."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature >= 0.0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class TokenPicker:
    """Picks the next token from logits (V,); seeded, so the same seed gives the same tokens."""

    def __init__(self, config: SamplingConfig) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)

    def __call__(self, logits: np.ndarray) -> int:
        if self.config.greedy:
            return int(np.argmax(logits))
        scaled = np.asarray(logits, np.float64) / self.config.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if self.config.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            before = np.cumsum(probs[order]) - probs[order]  # mass of the more likely tokens
            keep = order[before < self.config.top_p]  # always holds the most likely token
            kept = np.zeros_like(probs)
            kept[keep] = probs[keep]
            probs = kept / kept.sum()
        return int(self.rng.choice(probs.size, p=probs))


@dataclass
class DecodeResult:
    token_ids: list[int]
    ecg_token_states: np.ndarray | None  # (K, H) when the model emitted the [ECG] tokens
    stop_reason: str  # "eos" | "stop_token" | "ecg_tokens" | "max_new_tokens"
    prefill_s: float = 0.0
    decode_s: list[float] = field(default_factory=list)  # one entry per decode step


class DecoderGraph:
    """The ``decoder`` graph called with explicit past arrays: ``(logits, hidden, present list)``, by tensor name
    (bundle contract: inputs_embeds, attention_mask, position_ids, past_key_values.{i}.key|value -> logits,
    hidden_states, present.{i}.key|value)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        past = [i for i in graph.inputs if i.name.startswith(PAST_PREFIX)]
        if not past:
            raise ValueError(f"graph {getattr(graph, 'name', '?')} is not a decoder: no {PAST_PREFIX}* inputs")
        self.past_names = [i.name for i in past]
        self.present_names = [PRESENT_PREFIX + n[len(PAST_PREFIX):] for n in self.past_names]
        outputs = {o.name for o in graph.outputs}
        missing = [n for n in [LOGITS, HIDDEN, *self.present_names] if n not in outputs]
        if missing:
            raise ValueError(f"graph {getattr(graph, 'name', '?')} lacks the decoder outputs {', '.join(missing)}")
        self.num_layers = len(past) // 2
        self.kv_heads, self.head_dim = int(past[0].shape[1]), int(past[0].shape[3])  # type: ignore[arg-type]
        self.past_dtype = past[0].dtype

    def empty_past(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self.kv_heads, 0, self.head_dim)
        return [np.zeros(shape, self.past_dtype) for _ in range(2 * self.num_layers)]

    def __call__(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
                 past: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        feeds = {EMBEDS: inputs_embeds, MASK: attention_mask, POSITIONS: position_ids,
                 **dict(zip(self.past_names, past, strict=True))}
        out = self.graph.run(feeds)
        return out[LOGITS], out[HIDDEN], [out[n] for n in self.present_names]


class HostKvDecoder:
    """The KV cache as host arrays: each step's ``present.*`` outputs become the next step's ``past_key_values.*``
    (no copies); the empty past of the prefill is allocated once."""

    def __init__(self, graph: Graph) -> None:
        self.decoder = DecoderGraph(graph)
        self._empty = self.decoder.empty_past(1)
        self._past: list[np.ndarray] = self._empty

    def prefill(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
                position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._past = self._empty
        return self.step(inputs_embeds, attention_mask, position_ids)

    def step(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
             position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, hidden, self._past = self.decoder(inputs_embeds, attention_mask, position_ids, self._past)
        return logits[0, -1], hidden[0, -1]


def embedder(embed_tokens: Graph) -> Callable[[int], np.ndarray]:
    """``token id -> (1, 1, H)`` embeddings through the ``embed_tokens`` graph, with one reused id buffer."""
    ids = np.zeros((1, 1), np.int64)
    name = embed_tokens.inputs[0].name
    out = embed_tokens.outputs[0].name

    def embed(token_id: int) -> np.ndarray:
        ids[0, 0] = token_id
        return embed_tokens.run({name: ids})[out]

    return embed


def decode_tokens(decoder: KvDecoder, embed: Callable[[int], np.ndarray], inputs_embeds: np.ndarray,
                  attention_mask: np.ndarray, position_ids: np.ndarray, *, max_new_tokens: int, eos_token_id: int,
                  gen_token_ids: Sequence[int], stop_token_ids: Sequence[int] = (),
                  sampling: SamplingConfig | None = None) -> DecodeResult:
    """Decode one sequence (batch 1) from its prompt embeddings; see the module docstring.

    ``decoder`` is a :class:`~.backends.base.KvDecoder`; ``embed`` maps a token id to its (1, 1, H) embedding.
    """
    if inputs_embeds.shape[0] != 1:
        raise ValueError("decode_tokens() handles one sequence at a time")
    pick = TokenPicker(sampling or SamplingConfig())
    flow = TokenFlow(max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, gen_token_ids=gen_token_ids,
                     stop_token_ids=stop_token_ids)
    prompt_len = attention_mask.shape[1]
    mask = np.ones((1, prompt_len + max_new_tokens + len(flow.gen) + 1), np.int64)  # allocated once
    mask[:, :prompt_len] = attention_mask
    position = np.zeros((1, 1), np.int64)

    start = time.perf_counter()
    logits, hidden = decoder.prefill(inputs_embeds, attention_mask, position_ids)
    result = DecodeResult(token_ids=[], ecg_token_states=None, stop_reason="max_new_tokens",
                          prefill_s=time.perf_counter() - start)
    next_id = pick(logits)
    position[0, 0] = int(position_ids[0, -1])
    length = prompt_len
    states: list[np.ndarray] = []
    while (token := flow.admit(next_id)) is not None:
        position[0, 0] += 1
        length += 1
        step_start = time.perf_counter()
        logits, hidden = decoder.step(embed(token), mask[:, :length], position)
        result.decode_s.append(time.perf_counter() - step_start)
        if flow.collecting:
            states.append(np.array(hidden, np.float32))
            if flow.collected():
                result.ecg_token_states = np.stack(states)
                break
            continue
        next_id = pick(logits)
    result.token_ids, result.stop_reason = flow.token_ids, flow.stop_reason
    return result
