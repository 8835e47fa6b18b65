"""How long will the full recipe take here? A short run of every phase, scaled up to the preset's sizes.

:func:`shrink` keeps the preset's model sizes and batch sizes but runs only a few steps per phase on a small pool;
:func:`project` multiplies each phase's measured seconds per step (and the data and evaluation phases' seconds
per example) by the full counts. The first steps carry some one-off cost, so the projection errs long.
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
                      steps=min(steps, cfg.stage1.steps)),
             vae=r(cfg.vae, steps=min(steps, cfg.vae.steps)), unet=r(cfg.unet, steps=min(steps, cfg.unet.steps)),
             align=r(cfg.align, steps=min(steps, cfg.align.steps)),
             eval=r(cfg.eval, interpret_examples=min(SHORT_EVAL, cfg.eval.interpret_examples),
                    generate_examples=min(SHORT_EVAL, cfg.eval.generate_examples),
                    loss_examples=min(4 * SHORT_EVAL, cfg.eval.loss_examples)))


def _phase_steps(cfg: RecipeConfig) -> dict[str, int]:
    return {"stage1_encoder": cfg.stage1.encoder_steps, "stage1_lm": cfg.stage1.steps, "stage2_vae": cfg.vae.steps,
            "stage2_unet": cfg.unet.steps, "stage2_align": cfg.align.steps}


def _stage_summaries(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    s1, s2 = metrics["stages"]["stage1"], metrics["stages"]["stage2"]
    return {"stage1_encoder": s1["encoder"], "stage1_lm": s1["language"], "stage2_vae": s2["vae"],
            "stage2_unet": s2["unet"], "stage2_align": s2["align"]}


def project(full: RecipeConfig, short: RecipeConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    """Projected seconds of every phase of ``full`` from the ``metrics`` of a run of ``short``."""
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
    total = sum(phases.values())
    return {"preset": full.preset, "phases_s": {k: round(v, 1) for k, v in phases.items()},
            "total_s": round(total, 1), "total_h": round(total / 3600.0, 2),
            "measured_short_run": {"steps_per_phase": short_steps, "timings_s": timings,
                                   "torch_threads": metrics.get("torch_threads")}}
