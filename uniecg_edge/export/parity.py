"""Parity of exported graphs with PyTorch on real ECGs, and greedy decoding through ONNX vs the torch pipeline.

Inputs are real: the records go through :func:`uniecg_edge.preprocess.to_model_input`, the interpretation prompt
is tokenised, the ECG embeddings are spliced in, and each later graph is fed what the earlier ones produce in
torch (the [ECG]-token states after the prompt, the condition, the records' sex and age, a latent sampled from
that condition). A graph whose ONNX outputs differ from torch by more than its tolerance raises
:class:`ParityError` with one line naming the graph, the max |diff| and the tolerance.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..preprocess import to_model_input
from .onnx_generate import GraphRunner, OnnxGraphs, encode_prompt

if TYPE_CHECKING:
    import torch

    from ..model.uniecg import UniEcgModel
    from ..record import EcgRecord
    from .spec import GraphSpec

log = logging.getLogger(__name__)

SEX_CODES = {"M": 1.0, "F": 0.0}  # as the torch pipeline encodes sex for the UNet
DEFAULT_AGE = 50.0
NOMINAL_HR = 72.0  # used where a record header gives no heart rate (parity does not run the DSP)
LATENT_STEPS = 10  # sampler steps for the latent fed to the VAE decoder check
GREEDY_TOKENS = 32


class ParityError(InputError):
    """An exported graph whose outputs differ from PyTorch beyond its tolerance, or greedy tokens that differ."""


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


class RealInputs:
    """Real inputs for every graph, computed lazily from ``records`` (one batch row per record) in torch."""

    def __init__(self, model: UniEcgModel, records: Sequence[EcgRecord], *, seed: int = 0) -> None:
        if not records:
            raise ValueError("parity needs at least one record")
        self.model = model
        self.records = list(records)
        self.seed = seed

    @property
    def batch(self) -> int:
        return len(self.records)

    @property
    def label(self) -> str:
        return "real ECG: " + ", ".join(r.name for r in self.records)

    @cached_property
    def ecg(self) -> np.ndarray:
        return np.stack([to_model_input(r)[0] for r in self.records]).astype(np.float32)

    @cached_property
    def prompt_ids(self) -> np.ndarray:
        tokenizer = self.model.tokenizer
        ids = list(tokenizer(self.model.config.prompt.interpret_prompt(), add_special_tokens=False)["input_ids"])
        if tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id, *ids]
        return np.tile(np.asarray([ids], np.int64), (self.batch, 1))

    def _torch(self, *arrays: np.ndarray) -> list[torch.Tensor]:
        import torch

        return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]

    @cached_property
    def _spliced(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        from ..model.splice import splice_ecg_embeddings

        ids, ecg = self._torch(self.prompt_ids, self.ecg)
        with torch.no_grad():
            embeds, mask, positions = splice_ecg_embeddings(
                ids, self.model.embed_tokens(ids), self.model.encode_ecg(ecg), self.model.ecg_token_id)
        return _numpy(embeds), _numpy(mask).astype(np.int64), _numpy(positions)

    def _empty_past(self) -> tuple[np.ndarray, ...]:
        from .runtime_config import llm_geometry

        g = llm_geometry(self.model.llm)
        return tuple(np.zeros((self.batch, g.num_kv_heads, 0, g.head_dim), np.float32)
                     for _ in range(2 * g.num_layers))

    @cached_property
    def prefill_inputs(self) -> tuple[np.ndarray, ...]:
        return (*self._spliced, *self._empty_past())

    @cached_property
    def _prefill_outputs(self) -> list[np.ndarray]:
        from .specs.decoder import DecoderWithPast

        return run_torch(DecoderWithPast(self.model.llm).eval(), self.prefill_inputs)

    @cached_property
    def next_ids(self) -> np.ndarray:
        """(B, 1) the greedy next token after the prompt."""
        return np.argmax(self._prefill_outputs[0][:, -1:], axis=-1).astype(np.int64)

    @cached_property
    def decode_step_inputs(self) -> tuple[np.ndarray, ...]:
        _, mask, positions = self._spliced
        (ids,) = self._torch(self.next_ids)
        with _no_grad():
            step_embeds = _numpy(self.model.embed_tokens(ids))
        step_mask = np.concatenate([mask, np.ones((self.batch, 1), np.int64)], axis=1)
        return (step_embeds, step_mask, positions[:, -1:] + 1, *self._prefill_outputs[2:])

    @cached_property
    def token_states(self) -> np.ndarray:
        """(B, K, H) last-layer states at the [ECG_i] tokens appended after the ECG prompt (the forced path)."""
        import torch

        embeds, mask, _ = self._torch(*self._spliced)
        gen = torch.tensor([self.model.gen_token_ids] * self.batch, dtype=torch.long)
        k = gen.shape[1]
        with torch.no_grad():
            full = torch.cat([embeds, self.model.embed_tokens(gen)], dim=1)
            full_mask = torch.cat([mask, torch.ones_like(gen)], dim=1)
            out = self.model.llm(inputs_embeds=full, attention_mask=full_mask, output_hidden_states=True)
        return _numpy(out.hidden_states[-1][:, -k:])

    @cached_property
    def cond(self) -> np.ndarray:
        with _no_grad():
            return _numpy(self.model.gen_head(*self._torch(self.token_states)))

    @cached_property
    def patient(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sex, age, hr), each (B, 1, 1) float32, from the records' headers (age 50, HR 72 when absent)."""

        def column(values: list[float]) -> np.ndarray:
            return np.asarray(values, np.float32).reshape(-1, 1, 1)

        sex = column([SEX_CODES.get(str(r.meta.get("sex", "M")).upper()[:1], 1.0) for r in self.records])
        age = column([float(r.meta.get("age") or DEFAULT_AGE) for r in self.records])
        hr = column([float(r.meta.get("hr") or NOMINAL_HR) for r in self.records])
        return sex, age, hr

    @cached_property
    def terms(self) -> tuple[np.ndarray, ...]:
        with _no_grad():
            return tuple(_numpy(t) for t in self.model.unet.condition_terms(*self._torch(self.cond, *self.patient)))

    @cached_property
    def noise_latent(self) -> np.ndarray:
        cfg = self.model.unet.config
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal((self.batch, cfg.n_channels, cfg.latent_length)).astype(np.float32)

    @cached_property
    def timesteps(self) -> list[np.ndarray]:
        """The first (noisiest) and a middle timestep of the model's sampler, (B,) int64 each."""
        from ..model.schedulers import make_scheduler

        steps = make_scheduler(self.model.scheduler).timesteps
        return [np.full((self.batch,), int(steps[i]), np.int64) for i in (0, len(steps) // 2)]

    @cached_property
    def sampled_latent(self) -> np.ndarray:
        from ..model.schedulers import sample_latents

        sched = dataclasses.replace(self.model.scheduler,
                                    num_inference_steps=min(LATENT_STEPS, self.model.scheduler.num_inference_steps))
        latents = sample_latents(self.model.unet, self._torch(*self.terms), sched, batch=self.batch, seed=self.seed)
        return _numpy(latents)


def _no_grad() -> Any:
    import torch

    return torch.no_grad()


def run_torch(module: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run a wrapper module on numpy inputs; outputs as a flat list of numpy arrays."""
    import torch

    with torch.no_grad():
        out = module(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    return [_numpy(o) for o in outputs]


METRICS = ("max_abs_diff", "relative_max_error")  # relative: max |ONNX - torch| / max |torch| (quantize.py's)


def compare_outputs(onnx_out: Sequence[np.ndarray], torch_out: Sequence[np.ndarray],
                    names: Sequence[str]) -> tuple[float, float, str]:
    """(max |ONNX - torch|, that divided by max |torch|, the output where it occurs) over all outputs;
    inf for a NaN/inf that torch does not have or for a shape mismatch."""
    worst, where, scale = 0.0, names[0] if names else "", 0.0
    for name, a, b in zip(names, onnx_out, torch_out, strict=True):
        if a.shape != b.shape:
            return float("inf"), float("inf"), f"{name} (shape {a.shape} vs torch {b.shape})"
        if not a.size:
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        scale = max(scale, float(np.max(np.abs(b64))))
        value = float(np.max(np.abs(a64 - b64)))
        if not np.all(np.isfinite(a64)) and np.all(np.isfinite(b64)):
            value = float("inf")
        if value > worst or np.isnan(value):
            worst, where = (float("inf") if np.isnan(value) else value), name
    return worst, (worst / scale if scale > 0 else worst), where


@dataclasses.dataclass
class ParityResult:
    graph: str
    precision: str
    passed: bool
    max_abs_diff: float
    relative_max_error: float
    metric: str
    tolerance: float
    inputs: str
    cases: list[dict[str, Any]]
    compared_with: str = "torch fp32"

    @property
    def value(self) -> float:
        """The number the tolerance applies to."""
        return self.max_abs_diff if self.metric == "max_abs_diff" else self.relative_max_error

    def to_manifest(self) -> dict[str, Any]:
        return {"passed": self.passed, "max_abs_diff": self.max_abs_diff,
                "relative_max_error": self.relative_max_error, "metric": self.metric, "tolerance": self.tolerance,
                "compared_with": self.compared_with, "inputs": self.inputs, "cases": self.cases}

    def summary(self) -> str:
        name = "max |diff|" if self.metric == "max_abs_diff" else "relative max error"
        return f"{name} {self.value:.3g} / tolerance {self.tolerance:.3g}: {'pass' if self.passed else 'FAIL'}"


def check_graph(spec: GraphSpec, model: UniEcgModel, onnx_path: str | os.PathLike[str], real: RealInputs, *,
                tolerance: float | None = None, metric: str = "max_abs_diff", precision: str = "fp32",
                raise_on_failure: bool = True,
                providers: Sequence[str] = ("CPUExecutionProvider",)) -> ParityResult:
    """Compare ``onnx_path`` in onnxruntime with the spec's torch wrapper on the spec's real inputs.

    ``metric`` is ``max_abs_diff`` (fp32, against ``spec.tolerance`` unless ``tolerance`` is given) or
    ``relative_max_error`` (quantized graphs, the tolerances of ``quantize.TOLERANCES``).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown parity metric {metric!r} (known: {', '.join(METRICS)})")
    tol = spec.tolerance if tolerance is None else float(tolerance)
    runner = GraphRunner.from_file(onnx_path, providers=providers)
    module = spec.wrapper(model)
    names = [o.name for o in spec.outputs(model)]
    cases: list[dict[str, Any]] = []
    worst_abs, worst_rel, worst_case = 0.0, 0.0, ""
    for label, inputs in spec.real_inputs(real):
        diff, rel, where = compare_outputs(runner(*inputs), run_torch(module, inputs), names)
        batch = int(inputs[0].shape[0]) if inputs[0].ndim else 1
        cases.append({"case": label, "batch": batch, "max_abs_diff": diff, "relative_max_error": rel,
                      "output": where})
        if (diff if metric == "max_abs_diff" else rel) >= (worst_abs if metric == "max_abs_diff" else worst_rel):
            worst_case = f"{label}, output {where}"
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
    result = ParityResult(graph=spec.name, precision=precision, passed=False, max_abs_diff=worst_abs,
                          relative_max_error=worst_rel, metric=metric, tolerance=tol, inputs=real.label, cases=cases)
    result.passed = bool(result.value <= tol)
    log.info("parity %s (%s): %s", spec.name, precision, result.summary())
    if raise_on_failure and not result.passed:
        what = (f"max |diff| {worst_abs:.3g}" if metric == "max_abs_diff"
                else f"relative max error {worst_rel:.3g} (max |diff| {worst_abs:.3g})")
        raise ParityError(f"graph {spec.name} ({precision}) fails parity with torch: {what} > tolerance {tol:.3g} "
                          f"({worst_case}, {real.label})")
    return result


def first_mismatch(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first differing token (or where the shorter sequence ends); ``None`` when equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def check_greedy(model: UniEcgModel, graphs_dir: str | os.PathLike[str], runtime_config: dict[str, Any],
                 records: Sequence[EcgRecord], *, num_tokens: int = GREEDY_TOKENS, require_equal: bool = True,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> dict[str, Any]:
    """Greedy interpretation of each record through the ONNX graphs vs :class:`TorchPipeline`; token ids compared.

    The ONNX side tokenises with the bundle's ``tokenizer/tokenizer.json`` (as the torch-free runtime will).
    """
    from ..model.pipeline import TorchPipeline

    root = Path(graphs_dir)
    graphs = OnnxGraphs.from_dir(root, runtime_config, providers=providers)
    pipeline = TorchPipeline(model)
    prompt = model.config.prompt.interpret_prompt()
    prompt_ids = encode_prompt(root / "tokenizer" / "tokenizer.json", prompt, runtime_config["bos_token_id"])
    torch_ids = RealInputs(model, records[:1]).prompt_ids
    if not np.array_equal(prompt_ids, torch_ids):
        raise ParityError(f"the bundle's tokenizer.json tokenises the prompt differently from the checkpoint's "
                          f"tokenizer ({prompt_ids.shape[1]} vs {torch_ids.shape[1]} ids)")
    rows = []
    for record in records:
        ecg, _ = to_model_input(record)
        torch_result, _ = pipeline.respond(prompt, ecg, max_new_tokens=num_tokens)
        onnx_result = graphs.respond(prompt_ids, ecg, max_new_tokens=num_tokens)
        a, b = onnx_result.token_ids, torch_result.token_ids
        mismatch = first_mismatch(a, b)
        rows.append({"record": record.name, "equal": mismatch is None, "tokens": len(b), "first_mismatch": mismatch,
                     "stop_reason": torch_result.stop_reason, "onnx_stop_reason": onnx_result.stop_reason})
        if require_equal and mismatch is not None:
            got = a[mismatch] if mismatch < len(a) else "end"
            want = b[mismatch] if mismatch < len(b) else "end"
            raise ParityError(f"greedy decoding through the ONNX graphs differs from torch on {record.name} at token "
                              f"{mismatch} (onnx {got}, torch {want})")
    return {"greedy_tokens_equal": all(r["equal"] for r in rows), "num_tokens": num_tokens,
            "records": [r["record"] for r in rows], "per_record": rows, "compared_with": "torch fp32"}
