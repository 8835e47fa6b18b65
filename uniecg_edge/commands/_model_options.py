"""Options and model loading shared by the commands that run the model (interpret, generate)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

log = logging.getLogger(__name__)

MODEL_HELP = (
    "UniECG checkpoint folder. Default: the package's default model, which is UNTRAINED in this release "
    "(random weights: its text and ECGs are meaningless; provenance.trained is false)."
)


def model_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--model", "model_dir", type=click.Path(path_type=Path), default=None, help=MODEL_HELP
    )(func)


def backend_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--backend", type=click.Choice(["torch"]), default="torch", show_default=True,
        help="Inference backend (onnxruntime and tensorrt arrive with edge bundles).",
    )(func)


def load_pipeline(model_dir: Path | None) -> Any:
    """The torch reference pipeline for ``model_dir`` or the default model."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # one-line output; our own bars show long work
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from ..model.default import default_model_dir
    from ..model.pipeline import TorchPipeline

    if model_dir is None:
        model_dir = default_model_dir()
        log.warning("using the default model, which is untrained: its output is meaningless")
    return TorchPipeline.from_pretrained(model_dir)
