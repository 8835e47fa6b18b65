"""Package a trained checkpoint as the model shipped inside uniecg-edge, with its model card.

``python -m uniecg_edge.training.ship --model RUN/model [--evaluation EVAL.json] [--out FOLDER]`` copies the
checkpoint (renamed, ``trained: true``), its ``training_config.json`` / ``metrics.json`` (and
``distill_config.json`` when it is a distilled student), the real-record evaluation, writes ``MODEL_CARD.md``
from them and ``SHA256SUMS`` over every file, and refuses a model above the 25 MB weight budget. The folder is
staged beside ``--out`` and renamed into place when complete.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UniEcgError
from ..model.shipped import CARD_FILE, SHIPPED_NAME, shipped_model_dir, write_sums
from .model_card import render_model_card
from .presets import STUDENT_MAX_BYTES

log = logging.getLogger(__name__)

SIDE_FILES = ("training_config.json", "metrics.json", "distill_config.json")
EVALUATION_FILE = "evaluation.json"
LICENCE = "Apache-2.0 (weights trained by the uniecg-edge recipe on simulated ECGs)"
DESCRIPTION = ("Edge UniECG trained on the package's simulated 12-lead ECGs and evidence-based reports; "
               "for demonstration and testing, not for clinical use.")


def weight_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors"))


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def ship_model(model_dir: Path, out: Path, evaluation: Path | None = None,
               recipe_command: str | None = None) -> Path:
    """Write the shipped-model folder ``out`` from the checkpoint ``model_dir``; returns ``out``."""
    import dataclasses

    from ..model.uniecg import UniEcgModel

    model = UniEcgModel.from_pretrained(model_dir)
    model.config = dataclasses.replace(model.config, name=SHIPPED_NAME, trained=True, licence=LICENCE,
                                       description=DESCRIPTION)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        model.save_pretrained(staging)
        size = weight_bytes(staging)
        if size > STUDENT_MAX_BYTES:
            raise ConfigError(f"{model_dir}: {size / 1e6:.1f} MB of weights exceeds the shipped model's "
                              f"{STUDENT_MAX_BYTES / 1e6:.0f} MB budget")
        side: dict[str, dict[str, Any]] = {}
        for name in SIDE_FILES:
            for candidate in (model_dir / name, model_dir.parent / name):
                if candidate.is_file():
                    side[name] = _json(candidate)
                    shutil.copyfile(candidate, staging / name)
                    break
        if evaluation is not None:
            side[EVALUATION_FILE] = _json(evaluation)
            shutil.copyfile(evaluation, staging / EVALUATION_FILE)
        card = render_model_card(model, side, weight_bytes=size, recipe_command=recipe_command)
        (staging / CARD_FILE).write_text(card)
        write_sums(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("shipped %s (%.1f MB of weights) to %s", model_dir, size / 1e6, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniecg_edge.training.ship", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="trained checkpoint folder (recipe's RUN/model "
                        "or a distill output)")
    parser.add_argument("--evaluation", type=Path, default=None,
                        help="JSON of benchmarks/eval_model.py for this model (copied, summarised in the card)")
    parser.add_argument("--out", type=Path, default=None, help=f"default: the package's {SHIPPED_NAME} folder")
    parser.add_argument("--recipe-command", default=None, help="the command(s) that reproduce the model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        ship_model(args.model, args.out or shipped_model_dir(), args.evaluation, args.recipe_command)
    except UniEcgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
