"""The shipped edge model from one command and a seed: teacher and student recipes, then distillation.

``python -m uniecg_edge.training.edge_recipe --seed 0 --out DIR [--jobs 2] [--ship]`` runs

1. ``python -m uniecg_edge.training.recipe --preset teacher`` into ``DIR/teacher`` and ``--preset student`` into
   ``DIR/student`` (at the same time with ``--jobs 2``, one torch thread each; one after the other with
   ``--jobs 1``); the two share the data seed, so their tokenizers are identical, which distillation needs;
2. ``uniecg-edge distill --teacher DIR/teacher/model --student-config configs/student_edge.json
   --student-init DIR/student/model --out DIR/edge`` (KD of the student against the teacher, its own UNet
   step-distilled to 8 steps);
3. with ``--ship``, :func:`~.ship.ship_model` packages ``DIR/edge`` as the package's default model (with
   ``--evaluation``, a real-record evaluation JSON for its model card).

Each step runs in its own process and is skipped when its output is complete, so running the command again
continues an interrupted run (the recipes and the distillation resume from their checkpoints).
``DIR/edge_recipe.json`` records every step's command and wall time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UniEcgError

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parent / "configs"
STUDENT_CONFIG = CONFIGS / "student_edge.json"
SUMMARY_FILE = "edge_recipe.json"


@dataclass(frozen=True)
class EdgeRecipeConfig:
    """The whole edge recipe (saved in ``edge_recipe.json``)."""

    out: str
    seed: int = 0
    jobs: int = 2
    teacher_preset: str = "teacher"
    student_preset: str = "student"
    student_config: str = str(STUDENT_CONFIG)
    distill_args: tuple[str, ...] = ()  # extra `uniecg-edge distill` options (tests shorten the run with them)

    def __post_init__(self) -> None:
        if self.jobs not in (1, 2):
            raise ConfigError(f"--jobs must be 1 or 2, got {self.jobs}")


def recipe_command(cfg: EdgeRecipeConfig, role: str) -> list[str]:
    preset = cfg.teacher_preset if role == "teacher" else cfg.student_preset
    out = Path(cfg.out) / role
    command = [sys.executable, "-m", "uniecg_edge.training.recipe", "--seed", str(cfg.seed), "--preset", preset,
               "--out", str(out)]
    if cfg.jobs == 2:
        command += ["--threads", "1"]
    if (out / "training_config.json").is_file():
        command.append("--resume")
    return command


def distill_command(cfg: EdgeRecipeConfig) -> list[str]:
    out = Path(cfg.out)
    command = [sys.executable, "-m", "uniecg_edge", "distill", "--teacher", str(out / "teacher" / "model"),
               "--student-config", cfg.student_config, "--student-init", str(out / "student" / "model"),
               "--out", str(out / "edge"), "--seed", str(cfg.seed), *cfg.distill_args]
    if (out / "edge" / "checkpoints").is_dir():
        command.append("--resume")
    return command


def _recipe_done(folder: Path) -> bool:
    return (folder / "model" / "config.json").is_file() and (folder / "metrics.json").is_file()


def _distill_done(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "metrics.json").is_file()


def _run_all(commands: Sequence[list[str]], env: dict[str, str], logs: Sequence[Path]) -> None:
    """Run ``commands`` at the same time; each writes to its log; a failure names its log."""
    procs = []
    for command, log_path in zip(commands, logs, strict=True):
        log.info("running %s (log %s)", " ".join(command), log_path)
        handle = log_path.open("a")
        procs.append((subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env), handle, log_path))
    failed = []
    for proc, handle, log_path in procs:
        code = proc.wait()
        handle.close()
        if code != 0:
            failed.append(f"{log_path} (exit {code})")
    if failed:
        raise ConfigError(f"edge recipe step failed, see {', '.join(failed)}")


def run_edge_recipe(cfg: EdgeRecipeConfig) -> dict[str, Any]:
    """Run (or continue) the whole edge recipe; returns the summary written to ``edge_recipe.json``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if cfg.jobs == 2:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    summary: dict[str, Any] = {"config": asdict(cfg), "steps": {}}
    summary_path = out / SUMMARY_FILE
    if summary_path.is_file():
        summary["steps"] = json.loads(summary_path.read_text()).get("steps", {})

    def record(name: str, commands: list[list[str]], seconds: float) -> None:
        previous = summary["steps"].get(name, {}).get("seconds", 0.0)
        summary["steps"][name] = {"commands": [" ".join(c) for c in commands], "seconds": round(previous + seconds, 1)}
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")

    roles = [role for role in ("teacher", "student") if not _recipe_done(out / role)]
    if roles:
        commands = [recipe_command(cfg, role) for role in roles]
        start = time.perf_counter()
        if cfg.jobs == 2:
            _run_all(commands, env, [out / f"{role}.log" for role in roles])
        else:
            for command, role in zip(commands, roles, strict=True):
                _run_all([command], env, [out / f"{role}.log"])
        record("recipes", commands, time.perf_counter() - start)
    if not _distill_done(out / "edge"):
        command = distill_command(cfg)
        start = time.perf_counter()
        _run_all([command], {**os.environ, "HF_HUB_OFFLINE": "1"}, [out / "distill.log"])
        record("distill", [command], time.perf_counter() - start)
    summary["total_s"] = round(sum(step["seconds"] for step in summary["steps"].values()), 1)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniecg_edge.training.edge_recipe",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="run folder: teacher/, student/, edge/, logs, edge_recipe.json")
    parser.add_argument("--jobs", type=int, default=2, help="1: one recipe after the other; 2: both at once")
    parser.add_argument("--teacher-preset", default="teacher")
    parser.add_argument("--student-preset", default="student")
    parser.add_argument("--student-config", default=str(STUDENT_CONFIG))
    parser.add_argument("--distill-arg", action="append", default=[], metavar="ARG",
                        help="extra option for `uniecg-edge distill` (repeat; e.g. --distill-arg=--steps=4)")
    parser.add_argument("--ship", action="store_true", help="package DIR/edge as the package's default model")
    parser.add_argument("--evaluation", type=Path, default=None, help="real-record evaluation JSON for the card")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = EdgeRecipeConfig(out=args.out, seed=args.seed, jobs=args.jobs, teacher_preset=args.teacher_preset,
                               student_preset=args.student_preset, student_config=args.student_config,
                               distill_args=tuple(args.distill_arg))
        summary = run_edge_recipe(cfg)
        if args.ship:
            from ..model.shipped import shipped_model_dir
            from .ship import ship_model

            command = f"python -m uniecg_edge.training.edge_recipe --seed {args.seed} --out RUN --ship"
            ship_model(Path(args.out) / "edge", shipped_model_dir(), args.evaluation, recipe_command=command)
    except UniEcgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    log.info("edge recipe done in %.0f s: %s", summary["total_s"], Path(args.out) / "edge")
    return 0


if __name__ == "__main__":
    sys.exit(main())
