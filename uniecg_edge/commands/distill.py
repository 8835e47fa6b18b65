"""``uniecg-edge distill``: teacher -> student (LLM-side knowledge distillation, then diffusion step distillation).

Runs on ``accelerate``: ``accelerate launch --multi_gpu --num_processes 8 $(which uniecg-edge) distill ...``
(or ``torchrun --nproc_per_node 8 $(which uniecg-edge) distill ...``) spreads it over GPUs or nodes with DDP;
a plain ``uniecg-edge distill`` uses one device (checked here: 2 CPU processes under torchrun, gloo).
Writes a loadable student folder with ``distill_config.json`` and ``metrics.json``; ``--resume`` continues an
interrupted run from ``OUT/checkpoints``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("--teacher", "teacher_dir", type=click.Path(path_type=Path), required=True,
              help="Teacher UniECG checkpoint folder.")
@click.option("--student-config", type=click.Path(path_type=Path), required=True,
              help="Student config JSON (see uniecg_edge/training/configs/).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder for the student.")
@click.option("--steps", type=click.IntRange(0), default=1000, show_default=True,
              help="LLM-side distillation steps (optimizer updates).")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Examples per LLM step.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-4, show_default=True, help="LLM-side LR.")
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True,
              help="KD temperature T (the KL term is scaled by T^2).")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Weight of the KL term; 1 - alpha weighs the cross-entropy on the reports.")
@click.option("--gen-weight", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Weight of MSE + (1 - cos) between student and teacher generation-head outputs at [ECG].")
@click.option("--diffusion-steps", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Sampling steps of the distilled UNet (must divide 1000).")
@click.option("--diffusion-start-steps", type=click.IntRange(2), default=1024, show_default=True,
              help="DDIM steps of the first teacher; halved stage by stage down to --diffusion-steps.")
@click.option("--diffusion-iterations", type=click.IntRange(1), default=2000, show_default=True,
              help="Training iterations per halving stage.")
@click.option("--diffusion-batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="Teacher trajectories per step-distillation iteration.")
@click.option("--diffusion-lr", type=click.FloatRange(0, min_open=True), default=5e-5, show_default=True)
@click.option("--examples", "num_examples", type=click.IntRange(1), default=256, show_default=True,
              help="Synthetic training examples (ECG + report) to distil on.")
@click.option("--grad-accum", type=click.IntRange(1), default=1, show_default=True,
              help="Gradient accumulation steps.")
@click.option("--mixed-precision", type=click.Choice(["no", "fp16", "bf16"]), default="no", show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(0), default=200, show_default=True,
              help="Optimizer steps between checkpoints (0: only at phase and stage ends).")
@click.option("--cpu", is_flag=True, help="Run on the CPU even where a GPU is present.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json.")
def distill(teacher_dir: Path, student_config: Path, out: Path, steps: int, batch_size: int, lr: float,
            temperature: float, alpha: float, gen_weight: float, diffusion_steps: int, diffusion_start_steps: int,
            diffusion_iterations: int, diffusion_batch_size: int, diffusion_lr: float, num_examples: int,
            grad_accum: int, mixed_precision: str, checkpoint_every: int, cpu: bool, resume: bool, seed: int,
            as_json: bool) -> None:
    """Distil the UniECG in --teacher into a smaller student with a few-step diffusion sampler."""
    from ..errors import ConfigError

    if not teacher_dir.is_dir():
        raise ConfigError(f"{teacher_dir}: teacher folder not found")
    if not student_config.is_file():
        raise ConfigError(f"{student_config}: student config not found")

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars show the long work; none for loading and saving shards

    from ..training.accel import AccelConfig
    from ..training.distill import KdConfig
    from ..training.distill_job import DistillJobConfig, run_distillation
    from ..training.step_distill import StepDistillConfig

    cfg = DistillJobConfig(
        teacher=str(teacher_dir), student_config=str(student_config), out=str(out),
        kd=KdConfig(steps=steps, batch_size=batch_size, lr=lr, temperature=temperature, alpha=alpha,
                    gen_weight=gen_weight, seed=seed),
        diffusion=StepDistillConfig(start_steps=diffusion_start_steps, target_steps=diffusion_steps,
                                    iterations_per_stage=diffusion_iterations, batch_size=diffusion_batch_size,
                                    lr=diffusion_lr, seed=seed),
        accel=AccelConfig(gradient_accumulation_steps=grad_accum, mixed_precision=mixed_precision, cpu=cpu,
                          checkpoint_every=checkpoint_every),
        num_examples=num_examples, seed=seed, resume=resume,
    )
    metrics = run_distillation(cfg)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    if as_json:
        click.echo(json.dumps(metrics))
        return
    params, diffusion = metrics["parameters"], metrics["diffusion"]
    click.echo(f"wrote {out}: student {params['student_total']:,} parameters "
               f"(teacher {params['teacher_total']:,}; LLM side {params['ratio_llm_side']:.2f}x smaller), "
               f"{diffusion['unet_evaluations']['student']} UNet evaluations per ECG instead of "
               f"{diffusion['unet_evaluations']['teacher']}")
