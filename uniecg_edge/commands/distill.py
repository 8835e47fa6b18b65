"""``uniecg-edge distill``: teacher -> student (LLM-side knowledge distillation, then diffusion step distillation).

Runs on ``accelerate``: ``accelerate launch --multi_gpu --num_processes 8 $(which uniecg-edge) distill ...``
(or ``torchrun --nproc_per_node 8 $(which uniecg-edge) distill ...``) spreads it over GPUs or nodes with DDP;
a plain ``uniecg-edge distill`` uses one device (checked here: 2 CPU processes under torchrun, gloo).
Writes a loadable student folder with ``distill_config.json`` and ``metrics.json``; ``--resume`` continues an
interrupted run from ``OUT/checkpoints``.

Run settings: ``--preset`` (``full``: a long run from the 1024-step teacher grid; ``edge``: ~25-30 min on a 2-core
CPU for the recipe's student and teacher presets), overridden by the student JSON's ``distill`` section,
overridden by the options given here. The edge student::

    uniecg-edge distill --teacher runs/teacher/model \\
        --student-config uniecg_edge/training/configs/student_edge.json \\
        --student-init runs/student/model --out runs/edge-student
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

PRESET_NAMES = ("full", "edge")  # the registry (training.distill_job.DISTILL_PRESETS) is imported lazily
FROM_PRESET = "[default: from --preset]"


@click.command()
@click.option("--teacher", "teacher_dir", type=click.Path(path_type=Path), required=True,
              help="Teacher UniECG checkpoint folder.")
@click.option("--student-config", type=click.Path(path_type=Path), required=True,
              help="Student config JSON (see uniecg_edge/training/configs/).")
@click.option("--student-init", type=click.Path(path_type=Path), default=None,
              help="Pretrained student folder: overrides the student config's 'init_from'.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder for the student.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default=None,
              help="Run settings: full (a long run) or edge (~25 min on a 2-core CPU, 64 -> 8 steps) "
                   "[default: the student config's distill.preset, else full]; the config's other 'distill' "
                   "settings, then the options below, override the preset's.")
@click.option("--steps", type=click.IntRange(0), default=None,
              help=f"LLM-side distillation steps (optimizer updates). {FROM_PRESET}")
@click.option("--batch-size", type=click.IntRange(1), default=None, help=f"Examples per LLM step. {FROM_PRESET}")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help=f"LLM-side LR. {FROM_PRESET}")
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=None,
              help=f"KD temperature T (the KL term is scaled by T^2). {FROM_PRESET}")
@click.option("--alpha", type=click.FloatRange(0, 1), default=None,
              help=f"Weight of the KL term; 1 - alpha weighs the cross-entropy on the reports. {FROM_PRESET}")
@click.option("--gen-weight", type=click.FloatRange(0), default=None,
              help="Weight of MSE + (1 - cos) between student and teacher generation-head outputs at [ECG]. "
                   f"{FROM_PRESET}")
@click.option("--diffusion-steps", type=click.IntRange(1, 1000), default=None,
              help=f"Sampling steps of the distilled UNet (must divide 1000). {FROM_PRESET}")
@click.option("--diffusion-start-steps", type=click.IntRange(2), default=None,
              help=f"DDIM steps of the first teacher; halved stage by stage down to --diffusion-steps. {FROM_PRESET}")
@click.option("--diffusion-iterations", type=click.IntRange(1), default=None,
              help=f"Training iterations per halving stage. {FROM_PRESET}")
@click.option("--diffusion-batch-size", type=click.IntRange(1), default=None,
              help=f"Teacher trajectories per step-distillation iteration. {FROM_PRESET}")
@click.option("--diffusion-pairs", type=click.IntRange(0), default=None,
              help=f"Training pairs drawn per trajectory (0: all N). {FROM_PRESET}")
@click.option("--diffusion-lr", type=click.FloatRange(0, min_open=True), default=None,
              help=f"Step-distillation LR. {FROM_PRESET}")
@click.option("--examples", type=click.IntRange(1), default=None,
              help=f"Synthetic training examples (ECG + report) to distil on. {FROM_PRESET}")
@click.option("--grad-accum", type=click.IntRange(1), default=1, show_default=True,
              help="Gradient accumulation steps.")
@click.option("--mixed-precision", type=click.Choice(["no", "fp16", "bf16"]), default="no", show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(0), default=None,
              help=f"Optimizer steps between checkpoints (0: only at phase and stage ends). {FROM_PRESET}")
@click.option("--cpu", is_flag=True, help="Run on the CPU even where a GPU is present.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json.")
def distill(teacher_dir: Path, student_config: Path, student_init: Path | None, out: Path, preset: str | None,
            grad_accum: int, mixed_precision: str, cpu: bool, resume: bool, seed: int, as_json: bool,
            **settings: Any) -> None:
    """Distil the UniECG in --teacher into a smaller student with a few-step diffusion sampler."""
    from ..errors import ConfigError

    if not teacher_dir.is_dir():
        raise ConfigError(f"{teacher_dir}: teacher folder not found")
    if not student_config.is_file():
        raise ConfigError(f"{student_config}: student config not found")

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars show the long work; none for loading and saving shards

    from ..training.distill_job import job_config, run_distillation

    cfg = job_config(str(teacher_dir), str(student_config), str(out), preset=preset, settings=settings,
                     student_init=None if student_init is None else str(student_init), seed=seed, resume=resume,
                     accel_options={"gradient_accumulation_steps": grad_accum, "mixed_precision": mixed_precision,
                                    "cpu": cpu})
    metrics = run_distillation(cfg)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    if as_json:
        click.echo(json.dumps(metrics))
        return
    params, diffusion = metrics["parameters"], metrics["diffusion"]
    click.echo(f"wrote {out}: student {params['student_total']:,} parameters, {params['student_fp32_mb']} MB fp32 "
               f"(teacher {params['teacher_total']:,}: {params['ratio_total']:.2f}x fewer over all components), "
               f"{diffusion['unet_evaluations']['student']} UNet evaluations per ECG instead of "
               f"{diffusion['unet_evaluations']['teacher']}")
