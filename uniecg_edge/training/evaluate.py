"""Held-out evaluation of a trained run (``eval`` stream), written to ``metrics.json``.

* interpret: greedy reports through :class:`~uniecg_edge.model.pipeline.TorchPipeline`; the numbers read back
  by :func:`~uniecg_edge.evidence.extract_claims` against the truth (stated, within the evidence check's
  tolerance, mean absolute error), the findings named in the impression against the true labels;
* choice: how often the model emits the [ECG] tokens for a generate prompt, and never for an interpret prompt;
* alignment: cosine between the generation head's output and the scaled MiniLM embedding of the request;
* generation: ECGs generated for held-out requests, their heart rate measured by the DSP against the request;
* teacher-forced losses: report tokens, VAE reconstruction, UNet denoising.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import torch

from ..evidence import CLAIM_RULES, extract_claims
from ..model.schedulers import SchedulerConfig, make_scheduler
from .batching import Batcher, generate_forward
from .components import Components
from .dataset import ExampleSampler
from .labels import ALL_LABELS, RHYTHM_LABELS
from .pool import Pool
from .reports import REQUEST_STYLES, stated_numbers
from .stage1 import interpret_loss
from .stage2 import alignment_losses, pool_phase, pool_scalars, unet_loss

log = logging.getLogger(__name__)

LABEL_PHRASES = {
    "sinus_rhythm": r"\bsinus rhythm", "sinus_bradycardia": r"sinus bradycardia", "sinus_tachycardia":
    r"sinus tachycardia", "atrial_fibrillation": r"atrial fibrillation", "atrial_flutter": r"atrial flutter",
    "av_block_1": r"first-degree AV block", "av_block_2_mobitz1": r"Mobitz type I\b", "av_block_2_mobitz2":
    r"Mobitz type II", "av_block_3": r"third-degree", "pac": r"premature atrial", "pvc": r"premature ventricular",
    "rbbb": r"right bundle branch block", "lbbb": r"left bundle branch block", "left_axis_deviation":
    r"left axis deviation", "right_axis_deviation": r"right axis deviation", "st_elevation": r"ST elevation",
    "st_depression": r"ST depression", "prolonged_qt": r"prolonged QTc",
}
_IMPRESSION = re.compile(r"(?:Impression|In summary):(.*)", re.IGNORECASE | re.DOTALL)


def labels_in_text(text: str) -> set[str]:
    """The findings a report's impression names (the whole text when it has no impression)."""
    match = _IMPRESSION.search(text)
    part = match.group(1) if match else text
    return {label for label, pattern in LABEL_PHRASES.items() if re.search(pattern, part, re.IGNORECASE)}


def score_report(text: str, truth: dict[str, Any]) -> dict[str, Any]:
    """Per-report scores: each number's error (None when not stated) and the predicted findings."""
    claims = extract_claims(text)
    wanted = stated_numbers(truth)
    errors: dict[str, float | None] = {}
    within: dict[str, bool | None] = {}
    for rule in CLAIM_RULES:
        truth_value, claim = wanted[rule.key], claims.get(rule.key)
        if truth_value is None or claim is None:
            errors[rule.key], within[rule.key] = None, None
            continue
        diff = abs((claim - truth_value + 180) % 360 - 180) if rule.key == "axis_deg" else abs(claim - truth_value)
        errors[rule.key] = float(diff)
        within[rule.key] = diff <= rule.tolerance + rule.relative * abs(truth_value)
    return {"errors": errors, "within": within, "predicted": labels_in_text(text), "true": set(truth["labels"])}


def summarise_scores(scores: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(scores)}
    for rule in CLAIM_RULES:
        errs = [s["errors"][rule.key] for s in scores if s["errors"][rule.key] is not None]
        oks = [s["within"][rule.key] for s in scores if s["within"][rule.key] is not None]
        out[rule.key] = {"stated": len(errs), "within_tolerance": round(float(np.mean(oks)), 3) if oks else None,
                         "mean_abs_error": round(float(np.mean(errs)), 2) if errs else None}
    tp = sum(len(s["predicted"] & s["true"]) for s in scores)
    fp = sum(len(s["predicted"] - s["true"]) for s in scores)
    fn = sum(len(s["true"] - s["predicted"]) for s in scores)
    out["findings_micro_f1"] = round(2 * tp / max(1, 2 * tp + fp + fn), 3)
    out["findings_exact_match"] = round(float(np.mean([s["predicted"] == s["true"] for s in scores])), 3)
    rhythm_hits = [bool(s["predicted"] & s["true"] & set(RHYTHM_LABELS)) for s in scores]
    out["rhythm_accuracy"] = round(float(np.mean(rhythm_hits)), 3) if scores else None
    per_label = {}
    for label in ALL_LABELS:
        support = sum(label in s["true"] for s in scores)
        if support:
            per_label[label] = {"support": support,
                                "recall": round(sum(label in s["true"] & s["predicted"] for s in scores) / support, 3)}
    out["per_label_recall"] = per_label
    return out


def evaluate_interpret(pipeline: Any, sampler: ExampleSampler, n: int) -> dict[str, Any]:
    from ..leads import STANDARD_LEADS
    from ..record import EcgRecord
    from .loop import progress

    scores, stops, examples = [], [], []
    with progress(n, "eval interpret", unit="report") as bar:
        for i in range(n):
            ex = sampler.example("eval", i)
            record = EcgRecord(ex.ecg, fs=500.0, leads=STANDARD_LEADS, name=f"eval-{i}")
            report = pipeline.interpret(record)
            scores.append(score_report(report.text or "", ex.truth))
            stops.append(report.provenance["stop_reason"])
            if i < 3:
                examples.append({"truth_report": ex.report, "model_report": report.text})
            bar.update(1)
    summary = summarise_scores(scores)
    summary["ended_with_eos"] = round(float(np.mean([s == "eos" for s in stops])), 3) if stops else None
    summary["emitted_ecg_tokens"] = round(float(np.mean([s == "ecg_tokens" for s in stops])), 3) if stops else None
    summary["examples"] = examples
    return summary


def evaluate_choice(pipeline: Any, pool: Pool, n: int, choose_tokens: int = 8) -> dict[str, Any]:
    """Fraction of generate prompts (each request style) for which greedy decoding emits the [ECG] tokens."""
    emitted = []
    for i in range(min(n, pool.size)):
        for text in pool.requests[i]:
            result, _ = pipeline.respond(pipeline.model.config.prompt.generate_prompt(text), None,
                                         max_new_tokens=choose_tokens)
            emitted.append(result.stop_reason == "ecg_tokens")
    return {"n": len(emitted), "emits_ecg_tokens": round(float(np.mean(emitted)), 3) if emitted else None}


@torch.no_grad()
def evaluate_alignment(parts: Components, batcher: Batcher, pool: Pool, text_scale: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s, style in enumerate(REQUEST_STYLES):
        batch = batcher.generate([row[s] for row in pool.requests])
        _, states = generate_forward(parts.llm, batch)
        cond = parts.gen_head(states)
        target = torch.from_numpy(pool.embeddings[:, s]).unsqueeze(1) * text_scale
        losses = alignment_losses(cond, target)
        out[style] = {"cosine": round(1.0 - float(losses["cos_distance"]), 4), "mse": round(float(losses["mse"]), 4)}
    return out


def evaluate_generation(pipeline: Any, pool: Pool, n: int, steps: int) -> dict[str, Any]:
    """Generate from held-out requests (``impression_rate`` style) and measure the heart rate with the DSP."""
    from ..dsp import analyze_record

    style = list(REQUEST_STYLES).index("impression_rate")
    errors, rows = [], []
    for i in range(min(n, pool.size)):
        sex = "M" if pool.sex[i] == 1.0 else "F"
        generated = pipeline.generate(pool.requests[i][style], hr=float(pool.hr[i]), age=float(pool.age[i]),
                                      sex=sex, steps=steps, seed=i)
        measured = analyze_record(generated.record).measurements.heart_rate_bpm
        if measured is not None:
            errors.append(abs(measured - float(pool.hr[i])))
        rows.append({"request": pool.requests[i][style], "hr_requested": round(float(pool.hr[i]), 1),
                     "hr_measured": None if measured is None else round(float(measured), 1),
                     "ecg_tokens": generated.ecg_tokens})
    return {"n": len(rows), "hr_measured": len(errors),
            "hr_mean_abs_error_bpm": round(float(np.mean(errors)), 2) if errors else None, "examples": rows[:4]}


@torch.no_grad()
def heldout_losses(parts: Components, batcher: Batcher, sampler: ExampleSampler, pool: Pool, n: int,
                   text_scale: float, seed: int) -> dict[str, Any]:
    examples = sampler.examples("eval", 0, n)
    x = torch.from_numpy(pool.signals[:n])
    latent = parts.vae.encoder.encode(x, sample=False)
    recon = parts.vae.decoder(latent)
    relative = float(((recon - x) ** 2).mean() / (x**2).mean())
    gen = torch.Generator().manual_seed(seed)
    idx = np.arange(min(n, pool.size))
    scheduler = make_scheduler(SchedulerConfig(kind="ddpm"))
    cond = torch.from_numpy(pool.embeddings[idx, 0]).unsqueeze(1) * text_scale
    t = torch.randint(1, 999, (len(idx),), generator=gen)
    noise = torch.randn(latent[idx].shape, generator=gen)
    phase = pool_phase(parts, pool)
    beats = None if phase is None else phase[idx]
    denoise = float(unet_loss(parts, latent[idx], cond, pool_scalars(pool, idx), t, noise, scheduler, beats))
    return {"report_token_loss": round(interpret_loss(parts, batcher, examples), 4),
            "vae_relative_mse": round(relative, 4), "unet_eps_mse": round(denoise, 4)}
