"""A whole ``uniecg-edge distill`` run: LLM-side KD, then progressive step distillation of the UNet, then the
student folder with ``distill_config.json`` and ``metrics.json``.

Output folder::

    OUT/                       a UniEcgModel checkpoint (UniEcgModel.from_pretrained(OUT) loads it)
    OUT/distill_config.json    every setting of the run, the student config included
    OUT/metrics.json           parameter counts and ratios, losses, UNet evaluations 1000 vs N, sample errors
    OUT/checkpoints/           accelerate states (latest.json names the newest), llm-student/, unet-stage-XX/

The student is built from the teacher or loaded from ``init_from`` (``--student-init``; see :mod:`.student`);
its ``diffusion`` source decides which UNet is step-distilled (the teacher's copy or the student's own) and whose
generation head makes the conditions. Run settings come from a preset (:data:`DISTILL_PRESETS`), then the student
JSON's ``distill`` section, then the command line (:func:`job_config`).

Phases: ``llm`` (stage 0) then ``unet`` (stage i = halving i). ``resume=True`` continues from
``checkpoints/latest.json``; batches depend only on (seed, phase, stage, step, process), so a resumed run ends
where an uninterrupted one would. Under ``accelerate launch`` every process runs this same function.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..model.schedulers import SchedulerConfig
from ..model.unet import ConditionalUNet1d
from ..model.uniecg import UniEcgModel
from ..registry import Registry
from . import accel
from .accel import AccelConfig, TrainState
from .dataset import DataConfig
from .distill import (
    DistillExample,
    KdConfig,
    KdObjective,
    batch_indices,
    collate,
    describe_losses,
    teacher_conditions,
    teacher_outputs,
)
from .presets import RecipeConfig, Stage1Config
from .recipe import CONFIG_FILE
from .step_distill import (
    ConditionPool,
    StageObjective,
    StepDistillConfig,
    alphas_with_clean,
    freeze,
    new_student,
    sample_error,
    shipped_scheduler,
    stage_pairs,
)
from .student import DIFFUSION_SOURCES, StudentConfig, build_student, check_init_from, parameter_summary

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LLM_STUDENT = "llm-student"
REFERENCE_UNET_EVALUATIONS = 1000  # DiffuSETS' sampler: 1000-step DDPM


@dataclass(frozen=True)
class DistillJobConfig:
    teacher: str
    student_config: str
    out: str
    kd: KdConfig = field(default_factory=KdConfig)
    diffusion: StepDistillConfig = field(default_factory=StepDistillConfig)
    accel: AccelConfig = field(default_factory=AccelConfig)
    num_examples: int = 256
    seed: int = 0
    resume: bool = False
    student_init: str | None = None  # overrides the student config's init_from (--student-init)
    preset: str = "full"  # informational: the settings themselves are in kd / diffusion / accel

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# ---- run settings: presets < the student JSON's "distill" section < command-line options ----------------------
SETTINGS = {  # setting (the CLI option's name) -> (part of DistillJobConfig, field)
    "steps": ("kd", "steps"), "batch_size": ("kd", "batch_size"), "lr": ("kd", "lr"),
    "temperature": ("kd", "temperature"), "alpha": ("kd", "alpha"), "gen_weight": ("kd", "gen_weight"),
    "diffusion_steps": ("diffusion", "target_steps"), "diffusion_start_steps": ("diffusion", "start_steps"),
    "diffusion_iterations": ("diffusion", "iterations_per_stage"),
    "diffusion_batch_size": ("diffusion", "batch_size"), "diffusion_pairs": ("diffusion", "pairs_per_trajectory"),
    "diffusion_lr": ("diffusion", "lr"), "examples": ("job", "num_examples"),
    "checkpoint_every": ("accel", "checkpoint_every"),
}
PARTS: dict[str, type] = {"kd": KdConfig, "diffusion": StepDistillConfig, "accel": AccelConfig,
                          "job": DistillJobConfig}
DISTILL_PRESETS: Registry[dict[str, Any]] = Registry("distill preset")
DISTILL_PRESETS.add("full", {"checkpoint_every": 200})  # else the dataclasses' defaults: a long run from 1024 steps
# "edge": the `student` recipe preset (5.9 M parameters) from the `teacher` preset (24.9 M) on the 2-core CPU.
# Timed with random weights of those sizes (build_components, the recipe's tokenizer, real examples,
# OMP_NUM_THREADS=1, the CPU shared with two training jobs: figures under load). In a whole run of this preset
# with fewer steps (12 KD steps, 6 iterations per stage, 102 s in all): a KD step at batch 4 takes 2.8 s, a
# step-distillation iteration (16 trajectories x 4 pairs; sampling the 2N-step trajectories dominates) 3.1 s
# (64->32), 1.7 s (32->16), 1.1 s (16->8); loading, 256 examples, the condition pool, evaluations and saving
# ~35 s. Timed alone (a few steps each, busier moments): KD 3.1-4.2 s (5.7 s at batch 8), stages 2.7 / 2.8 / 1.9 s.
# KD 300 x 2.8 s = 840 s; UNet 80 x (3.1 + 1.7 + 1.1) s = 472 s; + ~45 s (with 5 KD checkpoints): ~1360 s =
# ~23 min; with the slower figures 300 x 3.6 + 80 x 7.4 + 90 = ~1760 s = ~29 min. An idle machine is faster.
DISTILL_PRESETS.add("edge", {
    "steps": 300, "batch_size": 4, "lr": 1e-4, "diffusion_steps": 8, "diffusion_start_steps": 64,
    "diffusion_iterations": 80, "diffusion_batch_size": 16, "diffusion_pairs": 4, "diffusion_lr": 1e-4,
    "checkpoint_every": 50,
})


def _checked_setting(name: str, value: Any, default: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(default, int) and not isinstance(value, int)):
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ConfigError(f"{where}: setting {name!r} must be {kind}, got {value!r}")
    return float(value) if isinstance(default, float) else value


def resolve_settings(preset: str | None, student_cfg: StudentConfig, given: dict[str, Any],
                     where: str = "student config") -> tuple[str, dict[str, Any]]:
    """The preset's name and the settings of a run: the preset (``preset``, else the JSON's ``distill.preset``,
    else ``full``), overridden by the JSON's ``distill`` section, overridden by ``given`` (None: not given)."""
    from_json = dict(student_cfg.distill)
    json_preset = from_json.pop("preset", None)
    name = preset or json_preset or "full"
    unknown = sorted(set(from_json) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"{where}: unknown 'distill' settings {', '.join(unknown)} "
                          f"(known: preset, {', '.join(sorted(SETTINGS))})")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: 'distill.preset' must be a preset name")
    values = {**DISTILL_PRESETS.get(name), **from_json, **{k: v for k, v in given.items() if v is not None}}
    defaults = {key: next(f.default for f in dataclasses.fields(PARTS[part]) if f.name == fld)
                for key, (part, fld) in SETTINGS.items()}
    return name, {k: _checked_setting(k, v, defaults[k], where) for k, v in values.items()}


def job_config(teacher: str, student_config: str, out: str, *, preset: str | None = None,
               settings: dict[str, Any] | None = None, student_init: str | None = None, seed: int = 0,
               resume: bool = False, accel_options: dict[str, Any] | None = None) -> DistillJobConfig:
    """A :class:`DistillJobConfig` from a preset, the student JSON's ``distill`` section and ``settings``
    (setting name -> value or None; see :data:`SETTINGS`); ``accel_options`` are further AccelConfig fields."""
    student_cfg = StudentConfig.from_file(student_config)
    name, values = resolve_settings(preset, student_cfg, settings or {}, where=str(student_config))
    parts: dict[str, dict[str, Any]] = {"kd": {"seed": seed}, "diffusion": {"seed": seed},
                                        "accel": dict(accel_options or {}), "job": {}}
    for key, value in values.items():
        part, fld = SETTINGS[key]
        parts[part][fld] = value
    return DistillJobConfig(teacher=str(teacher), student_config=str(student_config), out=str(out),
                            kd=KdConfig(**parts["kd"]), diffusion=StepDistillConfig(**parts["diffusion"]),
                            accel=AccelConfig(**parts["accel"]), seed=seed, resume=resume,
                            student_init=student_init, preset=name, **parts["job"])


def load_examples(count: int, seed: int, data: DataConfig | None = None,
                  grounding: Stage1Config | None = None) -> list[DistillExample]:
    """``count`` synthetic training examples (ECG, evidence-based report, sex, age, hr) of the package's dataset
    (``data``: the teacher's data settings). For a grounded teacher, ``grounding`` is its recipe's stage-1 settings:
    the examples are drawn as its grounding phase drew them (augmentations, counterpart rhythms, partial views) and
    a ``ground_fraction`` of them ask the grounded question (the DSP's evidence line first)."""
    from ..model.uniecg import PromptConfig
    from .dataset import ExampleSampler
    from .reports import write_report
    from .stage1 import grounded_questions, grounding_ecgs, grounding_sampler

    sampler = ExampleSampler(seed, data)
    if grounding is not None:
        sampler = grounding_sampler(sampler, grounding)
    examples = sampler.examples("train", 0, count)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 160]))
    fraction = 0.0 if grounding is None else grounding.ground_fraction
    grounded = grounded_questions(PromptConfig().interpret_question, examples, fraction, rng)
    ecgs = [ex.ecg for ex in examples] if grounding is None else grounding_ecgs(
        sampler, examples, grounded, 0, grounding, rng, np.random.default_rng(np.random.SeedSequence([seed, 161])))
    return [DistillExample(ecg=ecg, report=ex.report if q is None else write_report(truth, rng), sex=ex.sex,
                           age=ex.age, hr=ex.hr, question=q)
            for ex, ecg, (q, truth) in zip(examples, ecgs, grounded, strict=True)]


def teacher_recipe(teacher_dir: Path) -> RecipeConfig | None:
    """The recipe settings the teacher was trained with (the ``training_config.json`` the recipe writes into its
    model folder); None for a teacher trained elsewhere."""
    path = teacher_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return RecipeConfig.from_dict(json.loads(path.read_text()))
    except (ConfigError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a training config the recipe wrote ({exc})") from None


def teacher_examples(cfg: DistillJobConfig, teacher: UniEcgModel) -> list[DistillExample]:
    """The distillation's examples, from the teacher's own data and grounding settings (the defaults when the
    teacher has no recipe config); grounded prompts only for a grounded teacher."""
    recipe = teacher_recipe(Path(cfg.teacher))
    grounding = (recipe.stage1 if recipe else Stage1Config()) if teacher.config.grounded else None
    return load_examples(cfg.num_examples, cfg.seed, recipe.data if recipe else None, grounding)


def _load_inputs(cfg: DistillJobConfig) -> tuple[UniEcgModel, StudentConfig]:
    teacher_dir = Path(cfg.teacher)
    if not teacher_dir.is_dir():
        raise ConfigError(f"{teacher_dir}: teacher folder not found")
    student_cfg = StudentConfig.from_file(cfg.student_config)  # checked before the (large) teacher loads
    if cfg.student_init is not None:
        student_cfg = student_cfg.with_init_from(cfg.student_init)
    teacher = UniEcgModel.from_pretrained(teacher_dir)
    teacher.requires_grad_(False)
    if student_cfg.init_from is not None:
        check_init_from(teacher, student_cfg.init_from)
    schedule = DIFFUSION_SOURCES.get(student_cfg.diffusion).schedule(teacher, student_cfg)
    steps, train_steps = cfg.diffusion.target_steps, schedule.num_train_timesteps
    if train_steps % steps:
        raise ConfigError(f"--diffusion-steps {steps} must divide the {train_steps} training timesteps of "
                          f"{DIFFUSION_SOURCES.get(student_cfg.diffusion).description}")
    return teacher, student_cfg


def run_distillation(cfg: DistillJobConfig) -> dict[str, Any]:
    """Run (or resume) the whole distillation; returns the metrics also written to ``OUT/metrics.json``."""
    teacher, student_cfg = _load_inputs(cfg)
    out = Path(cfg.out)
    root = out / CHECKPOINTS
    latest = accel.latest_checkpoint(root)
    if latest is not None and not cfg.resume:
        raise ConfigError(f"{out}: holds a distillation run ({CHECKPOINTS}/{accel.LATEST_NAME}); "
                          "pass --resume or choose another --out")
    accelerator = accel.make_accelerator(cfg.accel)
    _check_same_run(cfg, student_cfg, root, resuming=latest is not None, main=accelerator.is_main_process)
    device = accelerator.device
    teacher.to(device)
    examples = teacher_examples(cfg, teacher)
    resume_state = latest[1] if latest else None
    resume_folder = latest[0] if latest else None

    if resume_state is None or resume_state.phase == "llm":
        student, llm_history = _llm_phase(cfg, accelerator, teacher, student_cfg, examples, root,
                                          resume_state, resume_folder)
        resume_state, resume_folder = None, None
    else:
        student = UniEcgModel.from_pretrained(root / LLM_STUDENT)
        llm_history = json.loads((root / "llm-history.json").read_text())
    student.to(device)

    # the UNet to step-distil (stage-0 teacher), its schedule, and the generation head trained with it
    source = DIFFUSION_SOURCES.get(student_cfg.diffusion)
    owner = source.owner(teacher, student)
    source_unet, schedule = owner.unet, owner.scheduler
    pool = ConditionPool(**teacher_conditions(owner, examples, cfg.kd.batch_size, device))
    unet, stage_metrics = _unet_phase(cfg, accelerator, source_unet, schedule, pool, root, resume_state,
                                      resume_folder)
    student.unet = unet.cpu()
    student.scheduler = shipped_scheduler(schedule, cfg.diffusion.target_steps)

    diffusion_source = {"name": student_cfg.diffusion, "unet": source.description, "schedule": schedule}
    metrics = _metrics(cfg, teacher, student, source_unet, diffusion_source, pool, llm_history, stage_metrics,
                       device)
    if accelerator.is_main_process:
        student.cpu().save_pretrained(out)
        (out / "distill_config.json").write_text(json.dumps(
            {**cfg.to_dict(), "student": student_cfg.to_dict(), "num_processes": accelerator.num_processes},
            indent=2) + "\n")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    accelerator.wait_for_everyone()
    return metrics


def _check_same_run(cfg: DistillJobConfig, student_cfg: StudentConfig, root: Path, *, resuming: bool,
                    main: bool) -> None:
    """Record what decides the result in ``checkpoints/job.json``; a resume with other settings is refused."""
    settings = {"teacher": str(Path(cfg.teacher).resolve()), "student": student_cfg.to_dict(), "seed": cfg.seed,
                "num_examples": cfg.num_examples, "kd": dataclasses.asdict(cfg.kd),
                "diffusion": dataclasses.asdict(cfg.diffusion),
                "gradient_accumulation_steps": cfg.accel.gradient_accumulation_steps}
    settings = json.loads(json.dumps(settings))
    path = root / "job.json"
    if resuming and path.is_file():
        saved = json.loads(path.read_text())
        changed = sorted(k for k in settings if saved.get(k) != settings[k])
        if changed:
            raise ConfigError(f"{root.parent}: --resume with settings that differ from the run's "
                              f"({', '.join(changed)}); use the original settings or another --out")
    elif main:
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2) + "\n")


# ---- phase 1: the LLM side -------------------------------------------------------------------------------
def _llm_phase(cfg: DistillJobConfig, accelerator: Any, teacher: UniEcgModel, student_cfg: StudentConfig,
               examples: list[DistillExample], root: Path, state: TrainState | None,
               folder: Path | None) -> tuple[UniEcgModel, list[dict[str, float]]]:
    kd = cfg.kd
    student, projection = build_student(teacher, student_cfg, seed=cfg.seed)
    objective = KdObjective(student, projection, kd).to(accelerator.device)
    params = accel.trainable_parameters(objective)
    optimizer = torch.optim.AdamW(params, lr=kd.lr, weight_decay=kd.weight_decay)
    objective, optimizer = accelerator.prepare(objective, optimizer)
    if state is not None and state.step > 0 and folder is not None:
        state = accel.load_checkpoint(accelerator, folder)
    state = state or TrainState(phase="llm")
    accum = cfg.accel.gradient_accumulation_steps
    model_for_tokens = accelerator.unwrap_model(objective).student

    def compute(step: int, micro: int) -> dict[str, torch.Tensor]:
        index = batch_indices(len(examples), kd.batch_size, seed=cfg.seed, step=step * accum + micro,
                              process=accelerator.process_index)
        batch = collate(model_for_tokens, [examples[i] for i in index]).to(accelerator.device)
        with accelerator.autocast():
            return objective(batch, teacher_outputs(teacher, batch))

    def checkpoint(s: TrainState) -> None:
        accel.save_checkpoint(accelerator, root, s, keep=cfg.accel.keep_checkpoints)

    objective.train()
    state = accel.train_steps(accelerator, objective, optimizer, compute, state, kd.steps, cfg=cfg.accel,
                              checkpoint=checkpoint, desc="distill llm")
    student = accelerator.unwrap_model(objective).student.eval()
    if accelerator.is_main_process:
        student.save_pretrained(root / LLM_STUDENT)
        (root / "llm-history.json").write_text(json.dumps(state.history) + "\n")
    accel.save_checkpoint(accelerator, root, TrainState(phase="unet"), keep=cfg.accel.keep_checkpoints,
                          with_accelerator_state=False)
    accel.release(accelerator)
    return student, state.history


# ---- phase 2: step distillation of the UNet --------------------------------------------------------------
def _stage_dir(root: Path, stage: int) -> Path:
    return root / f"unet-stage-{stage:02d}"


def _unet_phase(cfg: DistillJobConfig, accelerator: Any, source_unet: ConditionalUNet1d, schedule: SchedulerConfig,
                pool: ConditionPool, root: Path, state: TrainState | None,
                folder: Path | None) -> tuple[ConditionalUNet1d, list[dict[str, Any]]]:
    alphas = alphas_with_clean(schedule)
    first = state.stage if state is not None else 0
    stage_teacher = freeze(ConditionalUNet1d.from_pretrained(_stage_dir(root, first - 1)) if first
                           else source_unet).to(accelerator.device)
    metrics = json.loads((root / "unet-stages.json").read_text()) if first else []
    for stage, steps in enumerate(cfg.diffusion.stages):
        if stage < first:
            continue
        resume_from = folder if state is not None and state.stage == stage and state.step > 0 else None
        trained, record = _unet_stage(cfg, accelerator, stage_teacher, pool, alphas, stage, steps, root,
                                      resume_from)
        metrics.append(record)
        if accelerator.is_main_process:
            trained.save_pretrained(_stage_dir(root, stage))
            (root / "unet-stages.json").write_text(json.dumps(metrics) + "\n")
        accel.save_checkpoint(accelerator, root, TrainState(phase="unet", stage=stage + 1),
                              keep=cfg.accel.keep_checkpoints, with_accelerator_state=False)
        accel.release(accelerator)
        stage_teacher = trained
    return stage_teacher, metrics


def _unet_stage(cfg: DistillJobConfig, accelerator: Any, stage_teacher: ConditionalUNet1d, pool: ConditionPool,
                alphas: torch.Tensor, stage: int, steps: int, root: Path,
                resume_from: Path | None) -> tuple[ConditionalUNet1d, dict[str, Any]]:
    """One halving: a copy of ``stage_teacher`` learns to sample in ``steps`` what it samples in ``2 * steps``."""
    sd = cfg.diffusion
    objective = StageObjective(new_student(stage_teacher), alphas, sd.weighting).to(accelerator.device)
    optimizer = torch.optim.AdamW(accel.trainable_parameters(objective), lr=sd.lr, weight_decay=sd.weight_decay)
    objective, optimizer = accelerator.prepare(objective, optimizer)
    current = TrainState(phase="unet", stage=stage)
    if resume_from is not None:
        current = accel.load_checkpoint(accelerator, resume_from)
    accum = cfg.accel.gradient_accumulation_steps

    def compute(step: int, micro: int) -> dict[str, torch.Tensor]:
        pairs = stage_pairs(stage_teacher, pool, steps, sd, alphas, stage=stage, step=step * accum + micro,
                            process=accelerator.process_index, device=accelerator.device)
        with accelerator.autocast():
            return {"total": objective(**pairs)}

    def checkpoint(s: TrainState) -> None:
        accel.save_checkpoint(accelerator, root, s, keep=cfg.accel.keep_checkpoints)

    objective.train()
    current = accel.train_steps(accelerator, objective, optimizer, compute, current, sd.iterations_per_stage,
                                cfg=cfg.accel, checkpoint=checkpoint, desc=f"distill unet {2 * steps}->{steps}")
    trained = freeze(accelerator.unwrap_model(objective).student)
    count, device = sd.eval_samples, accelerator.device
    error = sample_error(trained, stage_teacher, pool, steps, 2 * steps, alphas, count=count, device=device)
    baseline = sample_error(stage_teacher, stage_teacher, pool, steps, 2 * steps, alphas, count=count, device=device)
    logger.info("stage %d (%d -> %d steps): rms %.4g (plain DDIM %.4g)", stage, 2 * steps, steps, error, baseline)
    return trained, {"teacher_steps": 2 * steps, "student_steps": steps,
                     "loss": describe_losses(current.history).get("total", {}),
                     "rms_vs_teacher": error, "rms_plain_ddim_vs_teacher": baseline}


# ---- metrics ---------------------------------------------------------------------------------------------
def _metrics(cfg: DistillJobConfig, teacher: UniEcgModel, student: UniEcgModel, reference: ConditionalUNet1d,
             source: dict[str, Any], pool: ConditionPool, llm_history: list[dict[str, float]],
             stages: list[dict[str, Any]], device: torch.device | str) -> dict[str, Any]:
    """``rms_*_start_grid``: the shipped sampler and plain DDIM at ``target_steps`` against the stage-0 teacher
    (``reference``, the source UNet before distillation) on its ``start_steps`` grid."""
    sd = cfg.diffusion
    alphas = alphas_with_clean(source["schedule"])
    unet = student.unet.to(device)
    reference = reference.to(device)
    return {
        "parameters": parameter_summary(teacher, student),
        "llm": {"steps": cfg.kd.steps, "losses": describe_losses(llm_history)},
        "diffusion": {
            "source": source["name"],
            "stage0_teacher": f"{source['unet']}, deterministic DDIM with {sd.start_steps} steps",
            "unet_evaluations": {"teacher": REFERENCE_UNET_EVALUATIONS, "student": sd.target_steps,
                                 "reduction": REFERENCE_UNET_EVALUATIONS / sd.target_steps},
            "scheduler": dataclasses.asdict(student.scheduler),
            "stages": stages,
            "rms_vs_teacher_start_grid": sample_error(unet, reference, pool, sd.target_steps, sd.start_steps,
                                                      alphas, count=sd.eval_samples, device=device),
            "rms_plain_ddim_vs_teacher_start_grid": sample_error(reference, reference, pool, sd.target_steps,
                                                                 sd.start_steps, alphas, count=sd.eval_samples,
                                                                 device=device),
        },
    }
