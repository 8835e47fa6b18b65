"""Stage 1, ECG -> text: the tokenizer on the report corpus, then the encoder, projector and LLM on (ECG, report).

Two phases, each a resumable :func:`~.loop.run_stage`:

1. ``stage1_encoder``: the ECG encoder alone, with a probe (mean of the encoder tokens -> LayerNorm -> Linear)
   regressing the truth (rate, RR, PR, QRS, QT, QTc, axis as sin/cos) and classifying the findings. It gives the
   encoder a strong, direct signal before the language model's loss reaches it through the projector.
2. ``stage1_lm``: full-parameter training of encoder, projector and LLM on the interpret prompt; the loss is the
   next-token loss on the report tokens (and ``</s>``) plus ``aux_weight`` x the probe loss.
3. ``stage1_ground`` (when ``ground_steps`` > 0): the same on fresh examples whose prompt carries, for a
   ``ground_fraction`` of them, the evidence line the DSP measures on that very ECG (:mod:`uniecg_edge.grounding`):
   the DSP's figures with their real errors, not the truth, so the model learns how far to trust them.

The probe is a training aid only; it is not part of the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..dsp import analyze_record
from ..grounding import grounded_question, stated_rate
from ..leads import STANDARD_LEADS
from ..record import EcgRecord
from .augment import partial_view
from .batching import Batcher, interpret_forward
from .components import Components
from .dataset import ExampleSampler, TrainingExample
from .labels import ALL_LABELS
from .loop import LoopConfig, run_stage
from .presets import RecipeConfig, Stage1Config
from .reports import REPORT_STYLES, write_report
from .scenarios import rhythm_counterpart

log = logging.getLogger(__name__)

# (truth key, divisor) of the regression targets; NaN marks a missing value (no PR in AF, flutter, AV block 3)
REGRESSION_TARGETS = (("hr_bpm", 100.0), ("rr_ms", 1000.0), ("pr_ms", 200.0), ("qrs_ms", 100.0),
                      ("qt_ms", 400.0), ("qtc_ms", 400.0))
N_TARGETS = len(REGRESSION_TARGETS) + 2  # + sin/cos of the axis


class EncoderProbe(nn.Module):
    """Mean-pooled encoder tokens -> truth regressions and finding logits."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, N_TARGETS + len(ALL_LABELS))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.out(self.norm(tokens.mean(dim=1)))
        return y[:, :N_TARGETS], y[:, N_TARGETS:]


def probe_targets(examples: Sequence[TrainingExample]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N_TARGETS) scaled regression targets (NaN = missing) and (B, n_labels) multi-hot findings."""
    values = np.full((len(examples), N_TARGETS), np.nan, dtype=np.float32)
    hot = np.zeros((len(examples), len(ALL_LABELS)), dtype=np.float32)
    for i, ex in enumerate(examples):
        for j, (key, scale) in enumerate(REGRESSION_TARGETS):
            if ex.truth[key] is not None:
                values[i, j] = ex.truth[key] / scale
        angle = np.deg2rad(ex.truth["axis_deg"])
        values[i, -2:] = (np.sin(angle), np.cos(angle))
        for label in ex.truth["labels"]:
            hot[i, ALL_LABELS.index(label)] = 1.0
    return torch.from_numpy(values), torch.from_numpy(hot)


def probe_loss(probe: EncoderProbe, tokens: torch.Tensor, examples: Sequence[TrainingExample]) -> torch.Tensor:
    regression, logits = probe(tokens)
    target, hot = probe_targets(examples)
    present = ~torch.isnan(target)
    mse = F.mse_loss(regression[present], target[present])
    return mse + F.binary_cross_entropy_with_logits(logits, hot)


def _examples(sampler: ExampleSampler, step: int, batch: int, offset: int) -> list[TrainingExample]:
    """The ``train`` stream, read in order: batch ``step`` of a phase starting at example ``offset``."""
    return sampler.examples("train", offset + step * batch, batch)


def train_encoder(parts: Components, probe: EncoderProbe, sampler: ExampleSampler, cfg: RecipeConfig,
                  work_dir: Path) -> dict[str, Any]:
    """Phase 1: the encoder and the probe on the truth."""
    s1 = cfg.stage1

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        examples = _examples(sampler, step, s1.encoder_batch, 0)
        ecg = torch.from_numpy(np.stack([ex.ecg for ex in examples]))
        loss = probe_loss(probe, parts.ecg_encoder(ecg), examples)
        return {"loss": loss}

    modules = {"ecg_encoder": parts.ecg_encoder, "probe": probe}
    params = [{"params": [p for m in modules.values() for p in m.parameters()], "lr": s1.encoder_lr}]
    loop = LoopConfig(steps=s1.encoder_steps, warmup_fraction=s1.warmup_fraction, weight_decay=s1.weight_decay,
                      grad_clip=s1.grad_clip, log_every=cfg.log_every, checkpoint_every_s=cfg.checkpoint_every_s)
    return run_stage("stage1_encoder", work_dir, modules, params, step_fn, loop)


def train_language(parts: Components, probe: EncoderProbe, batcher: Batcher, sampler: ExampleSampler,
                   cfg: RecipeConfig, work_dir: Path) -> dict[str, Any]:
    """Phase 2: encoder, projector and LLM on the interpret task (answer-token loss + auxiliary probe loss)."""
    s1 = cfg.stage1
    offset = s1.encoder_steps * s1.encoder_batch  # fresh examples after those of phase 1

    styles = list(REPORT_STYLES)

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        examples = _examples(sampler, step, s1.batch_size, offset)
        # one report style per batch: rows of similar length, little padding
        style = styles[step % len(styles)]
        reports = [write_report(ex.truth, style=style) for ex in examples]
        batch = batcher.interpret([ex.ecg for ex in examples], reports)
        out, tokens = interpret_forward(parts.ecg_encoder, parts.projector, parts.llm, batch, batcher.ecg_token_id)
        aux = probe_loss(probe, tokens, examples)
        return {"loss": out.loss + s1.aux_weight * aux, "lm": out.loss, "aux": aux}

    modules = {"ecg_encoder": parts.ecg_encoder, "projector": parts.projector, "llm": parts.llm, "probe": probe}
    params = [{"params": [p for m in modules.values() for p in m.parameters() if p.requires_grad], "lr": s1.lr}]
    loop = LoopConfig(steps=s1.steps, warmup_fraction=s1.warmup_fraction, weight_decay=s1.weight_decay,
                      grad_clip=s1.grad_clip, log_every=cfg.log_every, checkpoint_every_s=cfg.checkpoint_every_s)
    return run_stage("stage1_lm", work_dir, modules, params, step_fn, loop)


def grounded_questions(default: str, examples: Sequence[TrainingExample], fraction: float,
                       rng: np.random.Generator) -> list[tuple[str | None, dict[str, Any]]]:
    """Per example, ``(question, truth)``: with probability ``fraction`` the grounded question (the DSP's evidence
    line + ``default``, the prompt's question) and the truth with the rate and RR the line states, so the report
    written from it repeats the measurement it was given; else ``(None, the truth)`` (the default prompt)."""
    out: list[tuple[str | None, dict[str, Any]]] = []
    for ex in examples:
        if float(rng.random()) >= fraction:
            out.append((None, ex.truth))
            continue
        report = analyze_record(EcgRecord(ex.ecg, fs=500.0, leads=STANDARD_LEADS, name="train"))
        question = grounded_question(default, None, report)
        truth = dict(ex.truth)
        if question != default:  # a line was written: the report states its rate and RR
            # the rate as the line states it: the rate word the report picks agrees with the line's band
            truth["hr_bpm"] = float(stated_rate(report.measurements.heart_rate_bpm))  # type: ignore[arg-type]
            if report.measurements.rr_ms is not None:
                truth["rr_ms"] = float(report.measurements.rr_ms)
        out.append((question, truth))
    return out


def swapped_ecgs(sampler: ExampleSampler, examples: Sequence[TrainingExample],
                 grounded: Sequence[tuple[str | None, dict[str, Any]]], first_index: int, fraction: float,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """The ECG each grounded example shows: with probability ``fraction``, for prompts with an evidence line and a
    rhythm that has a counterpart, the same record simulated with the counterpart rhythm; else its own.
    ``examples[i]`` is example ``first_index + i`` of the ``train`` stream."""
    out = []
    for i, (ex, (question, _)) in enumerate(zip(examples, grounded, strict=True)):
        changes = None
        if fraction > 0 and question is not None and float(rng.random()) < fraction:
            changes = rhythm_counterpart(str(ex.truth["rhythm"]), rng)
        out.append(ex.ecg if changes is None else sampler.counterpart_ecg("train", first_index + i, changes))
    return out


def ground_offset(cfg: RecipeConfig) -> int:
    """First ``train`` example of the grounding phase (after those of phases 1 and 2)."""
    s1 = cfg.stage1
    return s1.encoder_steps * s1.encoder_batch + s1.steps * s1.batch_size


def grounding_sampler(sampler: ExampleSampler, s1: Stage1Config) -> ExampleSampler:
    """``sampler`` with the grounding phase's augmentations (tremor, P/T shapes, boundary rates)."""
    return sampler.with_augment(tremor_fraction=s1.ground_tremor_fraction,
                                morphology_fraction=s1.ground_morphology_fraction,
                                boundary_rate_fraction=s1.ground_boundary_rate_fraction)


def grounding_ecgs(sampler: ExampleSampler, examples: Sequence[TrainingExample],
                   grounded: Sequence[tuple[str | None, dict[str, Any]]], first_index: int, s1: Stage1Config,
                   rng: np.random.Generator, swap_rng: np.random.Generator) -> list[np.ndarray]:
    """What a grounding batch shows: the counterpart rhythm's ECG (``swapped_ecgs``), then partial views."""
    shown = swapped_ecgs(sampler, examples, grounded, first_index, s1.ground_swap_fraction, swap_rng)
    return [partial_view(ecg, rng, s1.ground_partial_s)
            if question is not None and float(rng.random()) < s1.ground_partial_fraction else ecg
            for ecg, (question, _) in zip(shown, grounded, strict=True)]


def train_grounding(parts: Components, batcher: Batcher, sampler: ExampleSampler, cfg: RecipeConfig,
                    work_dir: Path) -> dict[str, Any]:
    """Phase 3: encoder, projector and LLM on a mix of grounded and plain interpret prompts."""
    s1 = cfg.stage1
    offset = ground_offset(cfg)
    styles = list(REPORT_STYLES)
    sampler = grounding_sampler(sampler, s1)

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        examples = _examples(sampler, step, s1.batch_size, offset)
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 150, step]))
        style = styles[step % len(styles)]
        grounded = grounded_questions(batcher.prompt.interpret_question, examples, s1.ground_fraction, rng)
        reports = [write_report(truth, style=style) for _, truth in grounded]
        ecgs = grounding_ecgs(sampler, examples, grounded, offset + step * s1.batch_size, s1, rng,
                              np.random.default_rng(np.random.SeedSequence([cfg.seed, 151, step])))
        batch = batcher.interpret(ecgs, reports, [q for q, _ in grounded])
        out, _ = interpret_forward(parts.ecg_encoder, parts.projector, parts.llm, batch, batcher.ecg_token_id)
        return {"loss": out.loss}

    modules = {"ecg_encoder": parts.ecg_encoder, "projector": parts.projector, "llm": parts.llm}
    params = [{"params": [p for m in modules.values() for p in m.parameters() if p.requires_grad],
               "lr": s1.ground_lr}]
    loop = LoopConfig(steps=s1.ground_steps, warmup_fraction=s1.warmup_fraction, weight_decay=s1.weight_decay,
                      grad_clip=s1.grad_clip, log_every=cfg.log_every, checkpoint_every_s=cfg.checkpoint_every_s)
    return run_stage("stage1_ground", work_dir, modules, params, step_fn, loop)


@torch.no_grad()
def interpret_loss(parts: Components, batcher: Batcher, examples: Sequence[TrainingExample],
                   batch_size: int = 8) -> float:
    """Mean answer-token loss on ``examples`` (teacher forcing), for held-out evaluation."""
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = batcher.interpret([ex.ecg for ex in chunk], [ex.report for ex in chunk])
        out, _ = interpret_forward(parts.ecg_encoder, parts.projector, parts.llm, batch, batcher.ecg_token_id)
        total += float(out.loss) * len(chunk)
        count += len(chunk)
    return total / max(1, count)


def train_stage1(parts: Components, batcher: Batcher, sampler: ExampleSampler, cfg: RecipeConfig,
                 work_dir: Path) -> dict[str, Any]:
    """Both phases; returns their summaries."""
    torch.manual_seed(cfg.seed + 10)
    probe = EncoderProbe(parts.ecg_encoder.width)
    encoder = train_encoder(parts, probe, sampler, cfg, work_dir / "stage1_encoder")
    language = train_language(parts, probe, batcher, sampler, cfg, work_dir / "stage1_lm")
    out = {"encoder": encoder, "language": language}
    if cfg.stage1.ground_steps > 0:
        out["grounding"] = train_grounding(parts, batcher, sampler, cfg, work_dir / "stage1_ground")
    return out
