"""How long will the full recipe take here? A short run of every phase, scaled up to the preset's sizes.

:func:`shrink` keeps the preset's model sizes and batch sizes but runs only a few steps per phase on a small pool;
:func:`project` multiplies each phase's measured seconds per step (and the data and evaluation phases' seconds
per example) by the full counts. The first steps carry some one-off cost, so the projection errs long. With
``jobs`` 2 the VAE and UNet train beside stage 1 (:mod:`.parallel`): the longer of the two branches counts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .presets import RecipeConfig

SHORT_STEPS = 8
SHORT_POOL = 96
SHORT_CORPUS = 200
SHORT_EVAL = 2


def shrink(cfg: RecipeConfig, steps: int = SHORT_STEPS) -> RecipeConfig:
    """``cfg`` with ``steps`` steps per phase, a small corpus and pool, and a tiny evaluation."""
    r = dataclasses.replace
    return r(cfg, corpus_size=min(cfg.corpus_size, SHORT_CORPUS), pool_size=min(cfg.pool_size, SHORT_POOL),
             stage1=r(cfg.stage1, encoder_steps=min(steps, cfg.stage1.encoder_steps),
                      steps=min(steps, cfg.stage1.steps), ground_steps=min(steps, cfg.stage1.ground_steps)),
             vae=r(cfg.vae, steps=min(steps, cfg.vae.steps)), unet=r(cfg.unet, steps=min(steps, cfg.unet.steps)),
             align=r(cfg.align, steps=min(steps, cfg.align.steps)),
             eval=r(cfg.eval, interpret_examples=min(SHORT_EVAL, cfg.eval.interpret_examples),
                    generate_examples=min(SHORT_EVAL, cfg.eval.generate_examples),
                    loss_examples=min(4 * SHORT_EVAL, cfg.eval.loss_examples)))


STAGE1_PHASES = ("stage1_encoder", "stage1_lm", "stage1_ground")
GENERATOR_PHASES = ("stage2_vae", "stage2_unet")


def _phase_steps(cfg: RecipeConfig) -> dict[str, int]:
    steps = {"stage1_encoder": cfg.stage1.encoder_steps, "stage1_lm": cfg.stage1.steps,
             "stage1_ground": cfg.stage1.ground_steps, "stage2_vae": cfg.vae.steps, "stage2_unet": cfg.unet.steps,
             "stage2_align": cfg.align.steps}
    return {name: count for name, count in steps.items() if count > 0}


def _stage_summaries(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    s1, s2 = metrics["stages"]["stage1"], metrics["stages"]["stage2"]
    out = {"stage1_encoder": s1["encoder"], "stage1_lm": s1["language"], "stage2_vae": s2["vae"],
           "stage2_unet": s2["unet"], "stage2_align": s2["align"]}
    if "grounding" in s1:
        out["stage1_ground"] = s1["grounding"]
    return out


def wall_seconds(phases: dict[str, float], jobs: int) -> float:
    """The run's length from its phases' seconds: their sum, or with ``jobs`` 2 the VAE + UNet branch beside
    stage 1, so only the longer of the two counts."""
    total = sum(phases.values())
    if jobs == 2:
        stage1 = sum(phases.get(name, 0.0) for name in STAGE1_PHASES)
        generator = sum(phases.get(name, 0.0) for name in GENERATOR_PHASES)
        total -= min(stage1, generator)
    return total


def project(full: RecipeConfig, short: RecipeConfig, metrics: dict[str, Any], jobs: int = 1) -> dict[str, Any]:
    """Projected seconds of every phase of ``full`` from the ``metrics`` of a run of ``short`` (run with one job;
    ``jobs`` is the full run's, see :func:`wall_seconds`)."""
    measured = _stage_summaries(metrics)
    full_steps, short_steps = _phase_steps(full), _phase_steps(short)
    phases: dict[str, float] = {}
    for name, steps in full_steps.items():
        per_step = measured[name]["seconds"] / max(1, short_steps[name])
        phases[name] = per_step * steps
    timings = metrics["timings_s"]
    short_examples = short.pool_size + max(short.eval.generate_examples, short.eval.loss_examples, 1)
    full_examples = full.pool_size + max(full.eval.generate_examples, full.eval.loss_examples, 1)
    phases["tokenizer"] = timings["tokenizer"] * full.corpus_size / max(1, short.corpus_size)
    phases["data"] = timings["data"] * full_examples / max(1, short_examples)
    phases["evaluation"] = timings["evaluation"] * full.eval.interpret_examples / max(1, short.eval.interpret_examples)
    total = wall_seconds(phases, jobs)
    return {"preset": full.preset, "jobs": jobs, "phases_s": {k: round(v, 1) for k, v in phases.items()},
            "total_s": round(total, 1), "total_h": round(total / 3600.0, 2),
            "measured_short_run": {"steps_per_phase": short_steps, "timings_s": timings,
                                   "torch_threads": metrics.get("torch_threads")}}
