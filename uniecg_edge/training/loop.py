"""A resumable training loop: AdamW, linear warm-up then cosine decay, gradient clipping, a tqdm bar, losses
logged to ``losses.jsonl``, checkpoints every few minutes and a ``done.json`` when the stage has finished.

Each step's data and noise are drawn from ``(seed, stage, step)`` by the caller, so a run stopped and resumed
from a checkpoint sees exactly the batches it would have seen. Checkpoints are ``torch.save`` dicts of tensors
and plain values, read back with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
DONE = "done.json"
LOSSES = "losses.jsonl"
StepFn = Callable[[int], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class LoopConfig:
    steps: int
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every_s: float = 300.0


def progress(total: int, desc: str, initial: int = 0, unit: str = "step") -> Any:
    """A tqdm bar on stderr; redrawn at most every 15 s when stderr is a file (background runs)."""
    import sys

    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, mininterval=0.5 if interactive else 15.0,
                dynamic_ncols=interactive)


def lr_factor(step: int, cfg: LoopConfig) -> float:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine down to ``min_lr_fraction``."""
    warmup = max(1, int(round(cfg.warmup_fraction * cfg.steps)))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def stage_done(work_dir: Path) -> dict[str, Any] | None:
    """The ``done.json`` of a finished stage, or None."""
    path = work_dir / DONE
    return json.loads(path.read_text()) if path.is_file() else None


def save_modules(modules: dict[str, nn.Module], path: Path, extra: dict[str, Any] | None = None) -> None:
    state = {"modules": {name: m.state_dict() for name, m in modules.items()}, **(extra or {})}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_modules(modules: dict[str, nn.Module], path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    return state


def run_stage(
    name: str,
    work_dir: Path,
    modules: dict[str, nn.Module],
    param_groups: Iterable[dict[str, Any]],
    step_fn: StepFn,
    cfg: LoopConfig,
) -> dict[str, Any]:
    """Train ``modules`` with ``step_fn(step) -> {"loss": ..., other scalars}`` for ``cfg.steps`` steps.

    A finished stage (``done.json``) only reloads its final weights; a stopped one resumes from its checkpoint.
    Returns the stage summary (also written to ``done.json``): steps, seconds, final smoothed losses.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    done = stage_done(work_dir)
    if done is not None:
        load_modules(modules, work_dir / CHECKPOINT)
        log.info("%s: already trained (%d steps), weights reloaded", name, done["steps"])
        return done
    groups = [dict(g) for g in param_groups]
    for group in groups:
        group["base_lr"] = group["lr"]
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    start, elapsed, cpu = 0, 0.0, 0.0
    smooth: dict[str, float] = {}
    if (work_dir / CHECKPOINT).is_file():
        state = load_modules(modules, work_dir / CHECKPOINT)
        optimizer.load_state_dict(state["optimizer"])
        start, elapsed, smooth = int(state["step"]), float(state["elapsed_s"]), dict(state["smooth"])
        cpu = float(state["cpu_s"])
        log.info("%s: resuming at step %d", name, start)

    def checkpoint(step: int, seconds: float) -> None:
        save_modules(modules, work_dir / CHECKPOINT,
                     {"optimizer": optimizer.state_dict(), "step": step, "elapsed_s": seconds, "smooth": smooth,
                      "cpu_s": time.process_time() - cpu_began})

    for module in modules.values():
        module.train()
    began = time.perf_counter() - elapsed
    cpu_began = time.process_time() - cpu
    last_save = time.perf_counter()
    with (work_dir / LOSSES).open("a") as losses, progress(cfg.steps, name, start) as bar:
        for step in range(start, cfg.steps):
            factor = lr_factor(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            out = step_fn(step)
            out["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()}
            for key, value in values.items():
                smooth[key] = value if key not in smooth else 0.95 * smooth[key] + 0.05 * value
            bar.update(1)
            bar.set_postfix(loss=f"{smooth['loss']:.4f}", refresh=False)
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                record = {"step": step + 1, "lr": optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                          "elapsed_s": round(time.perf_counter() - began, 2), **values}
                losses.write(json.dumps(record) + "\n")
                losses.flush()
                spent = time.perf_counter() - began
                eta = spent / (step + 1) * (cfg.steps - step - 1)
                log.info("%s step %d/%d loss %.4f (smoothed %.4f), %.0f s elapsed, ~%.0f s left", name, step + 1,
                         cfg.steps, values["loss"], smooth["loss"], spent, eta)
            if time.perf_counter() - last_save >= cfg.checkpoint_every_s:
                checkpoint(step + 1, time.perf_counter() - began)
                last_save = time.perf_counter()
    seconds = time.perf_counter() - began
    checkpoint(cfg.steps, seconds)
    for module in modules.values():
        module.eval()
    cpu_seconds = time.process_time() - cpu_began
    summary = {"stage": name, "steps": cfg.steps, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
               "seconds_per_step": round(seconds / max(1, cfg.steps), 3),
               "final_smoothed": {k: round(v, 6) for k, v in smooth.items()}}
    (work_dir / DONE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
