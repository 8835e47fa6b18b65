"""``bench --scale``: how cost grows with model size, context length, batch and scheduler steps.

* **Model size**: decoders from the default model's (tiny) up to Qwen2-0.5B's shape (random weights, built offline
  with a fixed seed), one decode step at a fixed context against a random KV cache, per backend and precision:
  tokens/s, the bandwidth ceiling and the fraction reached, peak resident memory, weight bytes. The ONNX decoders
  (exported with the bundle's decoder spec, then quantized like a bundle's) are cached under the package cache.
* **Context length** and **batch**: the same step on the largest decoder asked for.
* **Scheduler steps**: full generation (text -> ECG) of the default model's bundles against the number of steps;
  ``per_step_ms`` and ``fixed_ms`` are a least-squares line through the points.

The onnxruntime decoders run on the CUDA provider when onnxruntime has it (else the CPU) unless ``providers`` are
given; the KV cache is passed as host arrays (on a GPU the copies are part of each step). TensorRT engines need a
bundle and ``build-engines``: the scale study leaves that backend out and says so.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import UniEcgError
from ..registry import Registry
from .adapters import ADAPTERS, AdapterOptions, KvLayout
from .ceiling import CEILING_COMPARISON_PREFIX, decoder_ceiling, onnx_weight_bytes, torch_weight_bytes
from .memory import PeakMemory
from .timing import TimingConfig, measure

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
SCALE_PRECISIONS = ("fp32", "int8", "int4")
SCALE_BACKENDS = ("torch", "onnxruntime")
SIZE_CONTEXT = 128
CONTEXTS = (128, 512, 1536)
BATCHES = (1, 2, 4, 8)
STEPS = (1, 5, 10, 25, 50)
SEED = 0
CEILING_TARGET = ("qwen2-0.5b", "onnxruntime", "int4", 0.5)  # 0.5 B int4 decoding >= 50 % of the ceiling


@dataclass(frozen=True)
class ScaleDecoder:
    """One decoder of the size ladder: a transformers config dict, or the default model's own LLM."""

    name: str
    description: str
    config: dict[str, Any] | None  # None: the default model's LLM

    def build(self) -> Any:
        import torch

        from ..model.llm import build_llm, load_llm

        if self.config is None:
            from ..model.default import default_model_dir

            return load_llm(default_model_dir() / "llm")
        torch.manual_seed(SEED)
        return build_llm(self.config)

    def key(self) -> str:
        if self.config is None:
            from ..model.default import default_model_dir
            from ..model.uniecg import checkpoint_sha256

            source = checkpoint_sha256(default_model_dir() / "llm")
        else:
            source = json.dumps(self.config, sort_keys=True)
        digest = hashlib.sha256(f"{source}|seed={SEED}".encode()).hexdigest()[:12]
        from ..export.quantize import cache_tag

        return f"{self.name}-{digest}-{cache_tag()}"


def _llama_45m() -> dict[str, Any]:
    from ..model.llm import tiny_llama

    return {**tiny_llama(32000), "hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 4,
            "num_attention_heads": 8, "num_key_value_heads": 8}


def _qwen2_100m() -> dict[str, Any]:
    from ..model.llm import tiny_qwen2

    return {**tiny_qwen2(32000), "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12,
            "num_attention_heads": 12, "num_key_value_heads": 2}


def _qwen2_0_5b() -> dict[str, Any]:
    from ..model.llm import qwen2_0_5b

    return qwen2_0_5b()


SCALE_DECODERS: Registry[Callable[[], ScaleDecoder]] = Registry("scale decoder")
SCALE_DECODERS.add("default", lambda: ScaleDecoder("default", "the default model's LLM (Llama, 2 layers, 64 wide)",
                                                   None))
SCALE_DECODERS.add("llama-45m", lambda: ScaleDecoder("llama-45m", "Llama, 4 layers, 512 wide, vocab 32000 "
                                                     "(edge-facts §4)", _llama_45m()))
SCALE_DECODERS.add("qwen2-100m", lambda: ScaleDecoder("qwen2-100m", "Qwen2, 12 layers, 768 wide, vocab 32000, tied",
                                                      _qwen2_100m()))
SCALE_DECODERS.add("qwen2-0.5b", lambda: ScaleDecoder("qwen2-0.5b", "Qwen2-0.5B's shape (494 M parameters)",
                                                      _qwen2_0_5b()))
DEFAULT_SCALE_DECODERS = ("default", "llama-45m", "qwen2-100m", "qwen2-0.5b")


# ---- the ONNX decoders -------------------------------------------------------------------------------------------
def decoder_dir(decoder: ScaleDecoder) -> Path:
    from ..model.default import cache_root

    return cache_root() / "bench" / "decoders" / decoder.key()


def ensure_onnx(decoder: ScaleDecoder, precision: str, llm: Any, say: Progress) -> Path:
    """The decoder graph at ``precision`` (``llm`` exported and quantized on first use, then cached)."""
    from ..export.onnx_export import export_graph
    from ..export.quantize import quantize_graph
    from ..export.spec import graph_specs

    root = decoder_dir(decoder)
    target = root / precision / "decoder.onnx"
    if target.is_file():
        return target
    fp32 = root / "fp32" / "decoder.onnx"
    if not fp32.is_file():
        say(f"  {decoder.name}: exporting the fp32 decoder graph (once; kept in {root})")
        export_graph(graph_specs(["decoder"])[0], SimpleNamespace(llm=llm), root / "fp32")  # type: ignore[arg-type]
        (root / "decoder_config.json").write_text(json.dumps(
            {"name": decoder.name, "description": decoder.description, "config": decoder.config, "seed": SEED},
            indent=2) + "\n")
    if precision != "fp32":
        say(f"  {decoder.name}: quantizing to {precision} (once)")
        quantize_graph("decoder", fp32, target, precision)
    return target


# ---- one decode step at a fixed context ----------------------------------------------------------------------------
def _step_inputs(kv: KvLayout, hidden: int, batch: int, context: int, seed: int = SEED
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    embeds = (0.02 * rng.standard_normal((batch, 1, hidden))).astype(np.float32)
    mask = np.ones((batch, context + 1), np.int64)
    positions = np.full((batch, 1), context, np.int64)
    past = [rng.standard_normal((batch, kv.num_kv_heads, context, kv.head_dim)).astype(np.float32)
            for _ in range(2 * kv.num_layers)]
    return embeds, mask, positions, past


def onnx_step(session_graph: Any, kv: KvLayout, hidden: int, batch: int, context: int) -> Callable[[], object]:
    from ..runtime.generation import DecoderGraph

    decoder = DecoderGraph(session_graph)
    embeds, mask, positions, past = _step_inputs(kv, hidden, batch, context)
    return lambda: np.argmax(decoder(embeds, mask, positions, past)[0][:, -1], axis=-1)


def torch_step(llm: Any, kv: KvLayout, hidden: int, batch: int, context: int) -> Callable[[], object]:
    """One step of the transformers model with its own cache (cropped back after each step: fixed context)."""
    import torch
    from transformers import DynamicCache

    embeds, mask, positions, past = (_step_inputs(kv, hidden, batch, context))
    cache = DynamicCache()
    for layer in range(kv.num_layers):
        cache.update(torch.from_numpy(past[2 * layer]), torch.from_numpy(past[2 * layer + 1]), layer)
    e, m, p = torch.from_numpy(embeds), torch.from_numpy(mask), torch.from_numpy(positions)

    @torch.no_grad()
    def step() -> object:
        out = llm(inputs_embeds=e, attention_mask=m, position_ids=p, past_key_values=cache, use_cache=True)
        cache.crop(-1)
        return out.logits[:, -1].argmax(-1)

    return step


def kv_layout(llm: Any) -> tuple[KvLayout, int]:
    from ..export.runtime_config import llm_geometry

    g = llm_geometry(llm)
    return KvLayout(g.num_layers, g.num_kv_heads, g.head_dim, 4), g.hidden_size


def _ort_providers(providers: tuple[str, ...] | None) -> list[str]:
    from ..runtime.providers import CPU_EP, CUDA_EP, available_providers, canonical_provider

    if providers:
        return [canonical_provider(p) for p in providers]
    return [CUDA_EP, CPU_EP] if CUDA_EP in available_providers() else [CPU_EP]


@dataclass(frozen=True)
class DecoderFacts:
    """What the rows of one decoder share."""

    decoder: ScaleDecoder
    params: int
    kv: KvLayout
    hidden: int
    max_positions: int


class ScaleStudy:
    """Runs the size ladder and the sweeps; collects rows under ``model_size``, ``context``, ``batch``, ``steps``."""

    def __init__(self, config: Any, bandwidth: dict[str, Any], say: Progress) -> None:
        self.config = config
        self.timing: TimingConfig = config.timing
        self.bandwidth = float(bandwidth["gb_per_s"])
        self.bandwidth_source = str(bandwidth["source"])
        self.say = say
        self.rows: dict[str, list[dict[str, Any]]] = {"model_size": [], "context": [], "batch": [], "steps": []}
        self.skipped: list[str] = []
        self.steps = tuple(STEPS if config.scale_steps is None else config.scale_steps)

    def _row(self, kind: str, facts: DecoderFacts, backend: str, precision: str, weight_bytes: int, batch: int,
             context: int, step: Callable[[], object], peak: PeakMemory | None) -> None:
        timing = measure(step, self.timing)
        tokens_per_s = batch * 1e3 / timing.p50_ms
        ceiling = decoder_ceiling(weight_bytes, facts.kv.bytes_per_position() * context, self.bandwidth, batch=batch,
                                  bandwidth_source=self.bandwidth_source)
        row: dict[str, Any] = {
            "decoder": facts.decoder.name, "params": facts.params, "backend": backend, "precision": precision,
            "stage": "decode_token", "batch": batch, "context": context, "p50_ms": timing.p50_ms,
            "p95_ms": timing.p95_ms, "p99_ms": timing.p99_ms, "n": timing.n, "tokens_per_s": tokens_per_s,
            "weight_bytes": weight_bytes, "bytes_per_token": ceiling.bytes_per_token,
            "ceiling_tokens_per_s": ceiling.tokens_per_s, "ceiling_fraction": ceiling.fraction(tokens_per_s),
        }
        if peak is not None:
            row.update(peak.read())
        self.rows[kind].append(row)
        self.say(f"  {facts.decoder.name} {backend} {precision} batch {batch} context {context}: "
                 f"{tokens_per_s:.1f} tok/s ({100 * row['ceiling_fraction']:.1f} % of {ceiling.tokens_per_s:.0f})")

    def _sweeps(self, facts: DecoderFacts, backend: str, precision: str, weight_bytes: int,
                make_step: Callable[[int, int], Callable[[], object]]) -> None:
        for context in CONTEXTS:
            if context >= facts.max_positions:
                self.skipped.append(f"{facts.decoder.name}: context {context} is beyond its {facts.max_positions} "
                                    "positions")
                continue
            self._row("context", facts, backend, precision, weight_bytes, 1, context, make_step(1, context), None)
        for batch in BATCHES:
            self._row("batch", facts, backend, precision, weight_bytes, batch, SIZE_CONTEXT,
                      make_step(batch, SIZE_CONTEXT), None)

    def run_decoder(self, decoder: ScaleDecoder, backends: list[str], precisions: list[str], sweep: bool) -> None:
        self.say(f"scale: decoder {decoder.name} ({decoder.description})")
        llm = decoder.build()
        facts = DecoderFacts(decoder, sum(p.numel() for p in llm.parameters()), *kv_layout(llm),
                             int(getattr(llm.config, "max_position_embeddings", 2048) or 2048))
        paths = {p: ensure_onnx(decoder, p, llm, self.say) for p in precisions if "onnxruntime" in backends}
        if "torch" in backends and "fp32" in precisions:
            self._torch_rows(facts, llm, sweep)
        del llm  # before the onnxruntime sessions: one copy of the weights at a time
        gc.collect()
        for precision, path in paths.items():
            self._onnx_rows(facts, precision, path, sweep)
            gc.collect()

    def _torch_rows(self, facts: DecoderFacts, llm: Any, sweep: bool) -> None:
        import torch

        torch.set_num_threads(self.config.threads)
        weight_bytes = torch_weight_bytes(llm)
        peak = PeakMemory()
        peak.reset()
        self._row("model_size", facts, "torch", "fp32", weight_bytes, 1, SIZE_CONTEXT,
                  torch_step(llm, facts.kv, facts.hidden, 1, SIZE_CONTEXT), peak)
        if sweep:
            self._sweeps(facts, "torch", "fp32", weight_bytes,
                         lambda b, c: torch_step(llm, facts.kv, facts.hidden, b, c))

    def _onnx_rows(self, facts: DecoderFacts, precision: str, path: Path, sweep: bool) -> None:
        from ..runtime.backends.ort_backend import OrtGraph

        peak = PeakMemory()
        peak.reset()
        graph = OrtGraph.from_file(path, providers=_ort_providers(self.config.providers),
                                   intra_op_threads=self.config.threads)
        weight_bytes = onnx_weight_bytes(path)
        self._row("model_size", facts, "onnxruntime", precision, weight_bytes, 1, SIZE_CONTEXT,
                  onnx_step(graph, facts.kv, facts.hidden, 1, SIZE_CONTEXT), peak)
        if sweep:
            self._sweeps(facts, "onnxruntime", precision, weight_bytes,
                         lambda b, c: onnx_step(graph, facts.kv, facts.hidden, b, c))

    def _steps_rows(self, adapter: Any, inputs: Any, backend: str, precision: str) -> None:
        from .stages import GENERATION_REQUEST

        points = []
        for steps in self.steps:
            timing = measure(partial(adapter.generate, GENERATION_REQUEST, inputs.patient, steps=steps), self.timing)
            points.append((steps, timing))
            self.say(f"  generation {backend} {precision} {steps} steps: p50 {timing.p50_ms:.1f} ms")
        fixed, per_step = _line([s for s, _ in points], [t.p50_ms for _, t in points])
        scheduler = _scheduler_kind(adapter)
        for steps, timing in points:
            self.rows["steps"].append({
                "backend": backend, "precision": precision, "stage": "full_generation", "steps": steps,
                "scheduler": scheduler, "p50_ms": timing.p50_ms, "p95_ms": timing.p95_ms, "p99_ms": timing.p99_ms,
                "n": timing.n, "per_step_ms": per_step, "fixed_ms": fixed})

    def run_steps(self, inputs: Any, backends: list[str], precisions: list[str]) -> None:
        """Full generation of the default model against the number of scheduler steps."""
        from .runner import Combination, exported_bundle

        for backend in backends:
            adapter_cls = ADAPTERS.get(backend)
            for precision in precisions:
                reason = adapter_cls.unavailable_reason() or adapter_cls.precision_reason(precision)
                if reason:
                    self.skipped.append(f"generation steps, {backend} {precision}: {reason}")
                    continue
                combo = Combination(backend, precision)
                try:
                    if adapter_cls.needs_bundle:
                        combo.bundle = exported_bundle(self.config.model_dir, precision, self.say)
                    adapter = adapter_cls(precision, combo.bundle, AdapterOptions(
                        threads=self.config.threads, model_dir=self.config.model_dir,
                        providers=self.config.providers))
                except UniEcgError as exc:
                    self.skipped.append(f"generation steps, {backend} {precision}: {exc}")
                    continue
                self._steps_rows(adapter, inputs, backend, precision)
                adapter.close()
                del adapter
                gc.collect()


def _scheduler_kind(adapter: Any) -> str:
    runtime = getattr(adapter, "runtime", None)
    if runtime is not None:
        return str(runtime.sampler_config.kind)
    model = getattr(adapter, "model", None)
    return str(model.scheduler.kind) if model is not None else "?"


def _line(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through the points (slope 0 for a single point)."""
    if len(xs) < 2:
        return (ys[0] if ys else 0.0), 0.0
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(intercept), float(slope)


def run_scale(config: Any, inputs: Any, bandwidth: dict[str, Any], say: Progress) -> dict[str, Any]:
    """The whole scale study for ``config`` (a :class:`~.runner.BenchConfig`); JSON-ready."""
    names = list(config.scale_decoders or DEFAULT_SCALE_DECODERS)
    decoders = [SCALE_DECODERS.get(n)() for n in names]
    backends = list(config.backends or SCALE_BACKENDS)
    precisions = list(config.precisions or SCALE_PRECISIONS)
    study = ScaleStudy(config, bandwidth, say)
    runnable: list[str] = []
    for backend in backends:
        adapter = ADAPTERS.get(backend)
        reason = adapter.unavailable_reason()
        if backend == "tensorrt":
            reason = reason or "TensorRT engines come from bundles (build-engines); the scale decoders are plain ONNX"
        if reason:
            study.skipped.append(f"{backend}: {reason}")
        else:
            runnable.append(backend)
    if "torch" in runnable and "fp32" not in precisions:
        study.skipped.append("torch: the scale study runs torch at fp32 only")
    for index, decoder in enumerate(decoders):
        sweep = index == len(decoders) - 1  # context and batch sweeps: the largest decoder asked for
        study.run_decoder(decoder, runnable, precisions, sweep)
    if study.steps:
        study.run_steps(inputs, runnable, precisions)
    described = [{"name": d.name, "description": d.description, "config": d.config} for d in decoders]
    out: dict[str, Any] = {"bandwidth_gb_s": study.bandwidth, "bandwidth_source": study.bandwidth_source,
                           "size_context": SIZE_CONTEXT, "contexts": list(CONTEXTS), "batches": list(BATCHES),
                           "steps_tried": list(study.steps), "decoders": described, **study.rows,
                           "skipped": study.skipped, "comparisons": _ceiling_comparison(study)}
    return out


def _ceiling_comparison(study: ScaleStudy) -> dict[str, Any]:
    name, backend, precision, target = CEILING_TARGET
    for row in study.rows["model_size"]:
        if (row["decoder"], row["backend"], row["precision"]) == (name, backend, precision):
            return {f"{CEILING_COMPARISON_PREFIX}{name}_{backend}_{precision}": {
                "label": f"{name} {backend} {precision} decode: fraction of the bandwidth ceiling "
                         f"({row['tokens_per_s']:.1f} of {row['ceiling_tokens_per_s']:.1f} tok/s)",
                "value": row["ceiling_fraction"], "target": target, "passed": row["ceiling_fraction"] >= target,
                "unit": "fraction"}}
    return {}
