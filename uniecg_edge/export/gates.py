"""Quality gates for a quantized bundle: does it still say and generate what the fp32 bundle does?

Both bundles run through onnxruntime (``onnx_generate``), on the check records of ``calibration.CHECK_RECORDS``
(never used to calibrate). A quantized graph may drift numerically; these gates measure what the user sees:

``top1_agreement``
    Teacher-forced top-1 agreement: the fp32 bundle's greedy interpretation of each record (prompt with the ECG
    spliced in, ``GATE_TOKENS`` tokens) is fed through both bundles in one pass; the value is the share of positions
    where the quantized bundle's top token is the fp32 bundle's, or ties with it: within ``TIE_NATS`` of the fp32
    best logit (probability ratio >= 0.9), where fp32 itself is indifferent. ``strict`` gives the plain share.
    Teacher forcing keeps one early flip from derailing the rest; the value is the minimum over records.
``ecg_token_cosine``
    The prompt followed by the K ``[ECG_i]`` tokens: cosine between the decoders' last-layer hidden states at the
    K positions (the generation head's input); the value is the minimum over tokens and records.
``cond_cosine``
    Cosine of the generation head's condition vector, each bundle end to end from its own hidden states.
``unet_noise_cosine``
    Cosine of the UNet's noise estimate for the same latent, timestep and fp32 condition (both bundles' unet_cond
    then unet) at ``GATE_TIMESTEPS`` of the training schedule (0 = last denoising step).
``vae_cosine``
    Cosine of the VAE decoder's ECG for the same latent: the fp32 bundle's sampler output (``GATE_DIFFUSION_STEPS``
    steps of its scheduler.json sampler, seeded); without UNet graphs, standard-normal values clipped to the
    sampler's [-1, 1].
``generated_ecg_cosine``
    End to end: each bundle's own condition vector, condition terms, sampler run (same seed and steps) and VAE;
    cosine of the two ECGs.
``statements_match``
    Share of records whose report names the same rhythms and findings (``corpus.RHYTHMS`` / ``FINDINGS``) in both
    bundles' free-running greedy text. For an untrained model (``config.json`` ``trained: false``) the text is
    noise, so this gate is reported with ``applies: false`` and ``passed: null``; the gates above decide.

Thresholds (``GATE_THRESHOLDS``) per precision, with their reasons beside them. A gate whose graphs a bundle lacks
is left out. ``gates_passed`` says whether every applicable gate passed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..record import EcgRecord

log = logging.getLogger(__name__)

GATE_TOKENS = 32  # greedy tokens per check record (as the export's parity check)
GATE_TIMESTEPS = (999, 500, 0)  # UNet timesteps compared: pure noise, halfway, the last step
GATE_DIFFUSION_STEPS = 10  # sampler steps for the VAE's latent and the end-to-end ECG (the bundle's sampler kind)
GATE_SEED = 0
# An untrained model's logits are flat (std 0.16, median top-2 gap 0.03 nats on the default model), so 4-bit
# weights flip near-ties (they lost at most 0.05 nats of fp32 logit) that a trained model would not meet; a
# broken graph picks tokens ~0.5 nats below the best. 0.1 nats = a 10 % probability ratio.
TIE_NATS = 0.1

# Why these numbers. A cosine is 1 - (relative error)^2 / 2 for small errors: 0.999 allows ~4.5 % relative error
# in a vector, 0.99 ~14 %, 0.98 ~20 %. Measured on the untrained default model and the check records (minimum over
# records; the worst case for quantization: random weights, flat logits):
#   fp16:         agreement 1.0, [ECG] states 1.0, cond 1.0, UNet 1.0, VAE 0.999998, generated ECG 0.999995
#   int8 dynamic: agreement 1.0, states 0.9998, cond 0.9999, UNet 0.99999, VAE 0.99999, generated ECG 0.9997
#   int8 static:  agreement 1.0, states 0.9997, cond 0.9999, UNet 0.9998, VAE 1.0 (fp32), generated ECG 0.97
#   int4:         agreement 1.0 (strict 0.64), states 0.9947, cond 0.9971, UNet/VAE as int8, generated ECG 0.9998
#   zeroed decoder weights: agreement 0.0, states 0.84; one zeroed attention projection: states 0.937-0.986.
# * top1_agreement (ties within TIE_NATS count as agreement): fp16 must keep greedy text (0.97: at most one flip
#   in 33 positions); int8 0.94 (two); int4 0.9 (three).
# * ecg_token_cosine / cond_cosine: they set the generated ECG; 0.999 fp16, 0.99 int8, 0.98 int4.
# * unet_noise_cosine / vae_cosine: one call on identical inputs; int4 bundles carry int8 UNet and VAE weights,
#   so they share int8's 0.99; fp16 0.999.
# * generated_ecg_cosine: the whole quantized chain (cond, condition terms, GATE_DIFFUSION_STEPS sampler steps, VAE)
#   against fp32 from the same noise; sampler steps compound the UNet's error, so 0.95 for int8 (static QDQ
#   measured 0.97), 0.99 for int4 (its UNet is int8 dynamic), 0.999 for fp16.
# * statements_match: a trained model must name the same rhythms and findings on every check record (1.0).
GATE_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"top1_agreement": 1.0, "ecg_token_cosine": 0.99999, "cond_cosine": 0.99999,
             "unet_noise_cosine": 0.99999, "vae_cosine": 0.99999, "generated_ecg_cosine": 0.9999,
             "statements_match": 1.0},
    "fp16": {"top1_agreement": 0.97, "ecg_token_cosine": 0.999, "cond_cosine": 0.999,
             "unet_noise_cosine": 0.999, "vae_cosine": 0.999, "generated_ecg_cosine": 0.999,
             "statements_match": 1.0},
    "int8": {"top1_agreement": 0.94, "ecg_token_cosine": 0.99, "cond_cosine": 0.99,
             "unet_noise_cosine": 0.99, "vae_cosine": 0.99, "generated_ecg_cosine": 0.95,
             "statements_match": 1.0},
    "int4": {"top1_agreement": 0.90, "ecg_token_cosine": 0.98, "cond_cosine": 0.98,
             "unet_noise_cosine": 0.99, "vae_cosine": 0.99, "generated_ecg_cosine": 0.99,
             "statements_match": 1.0},
}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays taken as flat vectors (1 when both are zero, nan when either is not finite)."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def statements(text: str) -> frozenset[str]:
    """The rhythms and findings a report's text names (case-insensitive whole phrases)."""
    from ..model.corpus import FINDINGS, RHYTHMS

    low = text.lower()
    return frozenset(p for p in (*RHYTHMS, *FINDINGS) if re.search(rf"(?<![\w-]){re.escape(p.lower())}(?![\w-])", low))


def top1_agreement(ref_logits: np.ndarray, cand_logits: np.ndarray, tie_nats: float = TIE_NATS
                   ) -> tuple[float, float]:
    """(tie-aware, strict) share of positions (rows of (T, V) logits) where the candidate's top token is the
    reference's (strict) or within ``tie_nats`` of the reference's best logit (tie-aware)."""
    if ref_logits.shape != cand_logits.shape or ref_logits.ndim != 2:
        raise ValueError(f"logits must be (positions, vocab) of one shape, got {ref_logits.shape} and "
                         f"{cand_logits.shape}")
    if not np.isfinite(cand_logits).all():
        return 0.0, 0.0
    choice = cand_logits.argmax(-1)
    same = choice == ref_logits.argmax(-1)
    lost = ref_logits.max(-1) - ref_logits[np.arange(len(choice)), choice]
    return float(np.mean(same | (lost <= tie_nats))), float(np.mean(same))


def gates_passed(gates: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether every gate that applies passed (``passed`` is ``None`` for a gate that does not apply)."""
    return all(g["passed"] for g in gates.values() if g.get("applies", True))


# ---- one bundle's graphs ---------------------------------------------------------------------------------------
class _BundleGraphs:
    """The ONNX graphs of a bundle folder (manifest not needed: gates run before it is written)."""

    def __init__(self, root: Path, providers: Sequence[str]) -> None:
        from .onnx_generate import GraphRunner, OnnxGraphs

        self.root = root
        config_path = root / "config.json"
        if not config_path.is_file():
            raise InputError(f"{root}: not a bundle folder (config.json missing)")
        self.config: dict[str, Any] = json.loads(config_path.read_text())
        needed = ("ecg_encoder", "embed_tokens", "decoder")
        missing = [n for n in needed if not (root / f"{n}.onnx").is_file()]
        if missing:
            raise InputError(f"{root}: bundle lacks {', '.join(f'{n}.onnx' for n in missing)}")
        self.understanding = OnnxGraphs.from_dir(root, self.config, providers=providers)
        self.runners = dict(self.understanding.runners)
        for name in ("gen_head", "unet_cond", "unet", "vae_decoder"):
            if (root / f"{name}.onnx").is_file():
                self.runners[name] = GraphRunner.from_file(root / f"{name}.onnx", providers=providers)

    def embed(self, ids: Sequence[int]) -> np.ndarray:
        (embeds,) = self.runners["embed_tokens"](np.asarray([list(ids)], np.int64))
        return embeds

    def prefill(self, prompt_ids: np.ndarray, ecg: np.ndarray, tail: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Logits (T, V) and hidden states (T, H) of prompt (ECG spliced) + ``tail`` tokens, in one pass."""
        from .onnx_generate import splice_ecg_embeddings

        (embeds,) = self.runners["embed_tokens"](prompt_ids)
        (ecg_embeds,) = self.runners["ecg_encoder"](np.asarray(ecg, np.float32)[None])
        embeds, mask, positions = splice_ecg_embeddings(prompt_ids, embeds, ecg_embeds,
                                                        int(self.config["ecg_token_id"]))
        if tail:
            embeds = np.concatenate([embeds, self.embed(tail)], axis=1)
            mask = np.concatenate([mask, np.ones((1, len(tail)), np.int64)], axis=1)
            last = int(positions[0, -1])
            positions = np.concatenate([positions, np.arange(last + 1, last + 1 + len(tail))[None]], axis=1)
        decoder = self.understanding.decoder
        logits, hidden, _ = decoder(embeds, mask, positions.astype(np.int64), decoder.empty_past(1))
        return logits[0], hidden[0]


# ---- the gates ---------------------------------------------------------------------------------------------------
def _check_inputs(check_records: Iterable[EcgRecord | str | os.PathLike[str]]) -> list[tuple[str, np.ndarray, dict]]:
    from ..preprocess import to_model_input
    from ..wfdb_io import read_record

    rows = []
    for item in check_records:
        record = item if isinstance(item, EcgRecord) else read_record(item)
        ecg, _ = to_model_input(record)
        rows.append((Path(record.name).name, ecg, dict(record.meta)))
    if not rows:
        raise InputError("quality gates need at least one check record")
    return rows


def _precision(quant_dir: Path, precision: str | None) -> str:
    if precision is None:
        manifest = quant_dir / "manifest.json"
        if not manifest.is_file():
            raise ConfigError(f"{quant_dir}: no manifest.json to read the precision from; pass precision=")
        precision = str(json.loads(manifest.read_text())["precision"])
    if precision not in GATE_THRESHOLDS:
        raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(GATE_THRESHOLDS)})")
    return precision


def _interpret_prompt(config: Mapping[str, Any]) -> str:
    from ..model.tokenizer import ECG_PLACEHOLDER

    prompt = config["prompt"]
    return str(prompt["interpret_template"]).format(system=prompt["system"], ecg=ECG_PLACEHOLDER,
                                                    question=prompt["interpret_question"])


def _patient(meta: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sex (1 = male), age, heart rate as (1, 1, 1) arrays; unknown values take a typical adult's."""
    sex = {"M": 1.0, "F": 0.0}.get(str(meta.get("sex", "M"))[:1].upper(), 1.0)
    age = float(meta.get("age") or 60.0)
    return (np.full((1, 1, 1), sex, np.float32), np.full((1, 1, 1), age, np.float32),
            np.full((1, 1, 1), 75.0, np.float32))


def _entry(values: list[float], threshold: float, **extra: Any) -> dict[str, Any]:
    worst = min(values) if values else float("nan")
    if not np.isfinite(worst):
        return {"value": None, "threshold": threshold, "passed": False, "note": "non-finite output", **extra}
    return {"value": round(float(worst), 6), "threshold": threshold, "passed": bool(worst >= threshold), **extra}


def run_gates(fp32_dir: str | os.PathLike[str], quant_dir: str | os.PathLike[str],
              check_records: Iterable[EcgRecord | str | os.PathLike[str]], *, precision: str | None = None,
              num_tokens: int = GATE_TOKENS, providers: Sequence[str] = ("CPUExecutionProvider",)
              ) -> dict[str, dict[str, Any]]:
    """Gate name -> ``{"value", "threshold", "passed"}`` for the bundle in ``quant_dir`` against ``fp32_dir``.

    ``precision`` defaults to the quantized bundle's manifest; ``check_records`` are WFDB paths or records.
    """
    from .onnx_generate import encode_prompt

    fp32_root, quant_root = Path(fp32_dir), Path(quant_dir)
    thresholds = GATE_THRESHOLDS[_precision(quant_root, precision)]
    ref, cand = _BundleGraphs(fp32_root, providers), _BundleGraphs(quant_root, providers)
    prompt_ids = encode_prompt(fp32_root / "tokenizer" / "tokenizer.json", _interpret_prompt(ref.config),
                               ref.config.get("bos_token_id"))
    values: dict[str, list[float]] = {}
    for index, (name, ecg, meta) in enumerate(_check_inputs(check_records)):
        found, states = _understanding_values(ref, cand, prompt_ids, ecg, num_tokens)
        found.update(_generation_values(ref, cand, states, meta, seed=GATE_SEED + index))
        for gate, numbers in found.items():
            values.setdefault(gate, []).extend(numbers)
        log.debug("%s gated", name)

    gates: dict[str, dict[str, Any]] = {}
    for gate in ("top1_agreement", "ecg_token_cosine", "cond_cosine", "unet_noise_cosine", "vae_cosine",
                 "generated_ecg_cosine"):
        if values.get(gate):
            extra: dict[str, Any] = {}
            if gate == "top1_agreement":
                extra = {"strict": round(min(values["_strict"]), 6), "tie_nats": TIE_NATS}
            gates[gate] = _entry(values[gate], thresholds[gate], **extra)
    share = float(np.mean(values["_same_statements"]))
    if ref.config.get("trained", True):
        gates["statements_match"] = _entry([share], thresholds["statements_match"])
    else:
        gates["statements_match"] = {
            "value": round(share, 6), "threshold": thresholds["statements_match"], "passed": None, "applies": False,
            "note": "untrained model: its text is noise, so top1_agreement and the cosines decide"}
    for gate, entry in gates.items():
        log.info("gate %s: %s (threshold %s) %s", gate, entry["value"], entry["threshold"],
                 {True: "passed", False: "FAILED", None: "not applied"}[entry["passed"]])
    return gates


def _understanding_values(ref: _BundleGraphs, cand: _BundleGraphs, prompt_ids: np.ndarray, ecg: np.ndarray,
                          num_tokens: int) -> tuple[dict[str, list[float]], tuple[np.ndarray, np.ndarray]]:
    """One record's top-1 agreement, [ECG]-token cosines and statements match; and both bundles' [ECG] states."""
    gen_ids = [int(t) for t in ref.config["gen_token_ids"]]
    greedy = ref.understanding.respond(prompt_ids, ecg, max_new_tokens=num_tokens)
    ref_logits, _ = ref.prefill(prompt_ids, ecg, greedy.token_ids)
    cand_logits, _ = cand.prefill(prompt_ids, ecg, greedy.token_ids)
    first = ref_logits.shape[0] - len(greedy.token_ids) - 1  # the prompt's last position
    tied, strict = top1_agreement(ref_logits[first:], cand_logits[first:])

    k = len(gen_ids)
    ref_states = ref.prefill(prompt_ids, ecg, gen_ids)[1][-k:]
    cand_states = cand.prefill(prompt_ids, ecg, gen_ids)[1][-k:]

    cand_greedy = cand.understanding.respond(prompt_ids, ecg, max_new_tokens=num_tokens)
    ref_text, cand_text = (_text(ref.root, ids, gen_ids) for ids in (greedy.token_ids, cand_greedy.token_ids))
    log.debug("fp32 text %r; quantized text %r", ref_text, cand_text)
    values = {"top1_agreement": [tied], "_strict": [strict],
              "ecg_token_cosine": [cosine(a, b) for a, b in zip(ref_states, cand_states, strict=True)],
              "_same_statements": [float(statements(ref_text) == statements(cand_text))]}
    return values, (ref_states, cand_states)


def _generation_values(ref: _BundleGraphs, cand: _BundleGraphs, states: tuple[np.ndarray, np.ndarray],
                       meta: Mapping[str, Any], seed: int) -> dict[str, list[float]]:
    """Condition, UNet, VAE and end-to-end ECG cosines for one record (those whose graphs both bundles hold)."""
    out: dict[str, list[float]] = {}
    if not all("gen_head" in b.runners for b in (ref, cand)):
        return out
    (ref_cond,) = ref.runners["gen_head"](states[0][None])
    (cand_cond,) = cand.runners["gen_head"](states[1][None])
    out["cond_cosine"] = [cosine(ref_cond, cand_cond)]
    shape = (1, int(ref.config["latent_channels"]), int(ref.config["latent_length"]))
    rng = np.random.default_rng(seed)
    diffusion = all(n in b.runners for b in (ref, cand) for n in ("unet_cond", "unet"))
    if diffusion:
        patient = _patient(meta)
        ref_terms = ref.runners["unet_cond"](ref_cond, *patient)
        noise = rng.standard_normal(shape).astype(np.float32)
        cand_terms = cand.runners["unet_cond"](ref_cond, *patient)
        steps = [np.asarray([t], np.int64) for t in GATE_TIMESTEPS]
        out["unet_noise_cosine"] = [cosine(ref.runners["unet"](noise, t, *ref_terms)[0],
                                           cand.runners["unet"](noise, t, *cand_terms)[0]) for t in steps]
        ref_latent = _sample(ref, ref_terms, seed)
    else:  # the sampler's output domain (clip_sample keeps latents in [-1, 1])
        ref_latent = np.clip(rng.standard_normal(shape), -1.0, 1.0).astype(np.float32)
    if all("vae_decoder" in b.runners for b in (ref, cand)):
        (ref_ecg,) = ref.runners["vae_decoder"](ref_latent)
        out["vae_cosine"] = [cosine(ref_ecg, cand.runners["vae_decoder"](ref_latent)[0])]
        if diffusion:
            cand_latent = _sample(cand, cand.runners["unet_cond"](cand_cond, *_patient(meta)), seed)
            out["generated_ecg_cosine"] = [cosine(ref_ecg, cand.runners["vae_decoder"](cand_latent)[0])]
    return out


class _OnnxUNet:
    """The ``unet`` graph behind the torch UNet's call, so the package's sampler loop drives it."""

    def __init__(self, runner: Any, channels: int, length: int) -> None:
        from types import SimpleNamespace

        self.runner = runner
        self.config = SimpleNamespace(n_channels=channels, latent_length=length)

    def __call__(self, sample: Any, timestep: Any, terms: Sequence[Any]) -> Any:
        import torch

        (noise,) = self.runner(sample.numpy(), timestep.numpy(), *(t.numpy() for t in terms))
        return torch.from_numpy(noise)


def _sample(bundle: _BundleGraphs, terms: Sequence[np.ndarray], seed: int) -> np.ndarray:
    """A latent from ``GATE_DIFFUSION_STEPS`` steps of the bundle's sampler (scheduler.json, else DDIM), seeded."""
    import dataclasses

    import torch

    from ..model.schedulers import SchedulerConfig, load_scheduler_config, sample_latents

    path = bundle.root / "scheduler.json"
    config = load_scheduler_config(path) if path.is_file() else SchedulerConfig(kind="ddim")
    config = dataclasses.replace(config, num_inference_steps=min(GATE_DIFFUSION_STEPS, config.num_train_timesteps))
    unet = _OnnxUNet(bundle.runners["unet"], int(bundle.config["latent_channels"]),
                     int(bundle.config["latent_length"]))
    terms_t = [torch.from_numpy(np.asarray(t, np.float32)) for t in terms]
    latent = sample_latents(unet, terms_t, config, seed=seed)  # type: ignore[arg-type]  # duck-typed UNet
    return latent.numpy().astype(np.float32)


def _text(root: Path, token_ids: Sequence[int], gen_ids: Sequence[int]) -> str:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(root / "tokenizer" / "tokenizer.json"))
    return tokenizer.decode([t for t in token_ids if t not in set(gen_ids)], skip_special_tokens=True).strip()
