"""Options and model loading shared by the commands that run the model (interpret, generate).

Without ``--bundle`` the commands run the torch reference pipeline on ``--model`` (or the default model). With
``--bundle DIR`` they run the on-device runtime (:class:`uniecg_edge.runtime.EdgeRuntime`) on ``--backend``
(default ``auto``: TensorRT engines > onnxruntime TensorRT EP > CUDA EP > CPU EP).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import InputError

log = logging.getLogger(__name__)

MODEL_HELP = (
    "UniECG checkpoint folder. Default: the trained edge model shipped in the package (a small model trained on "
    "simulated ECGs: for demonstration and testing, not for clinical use; $UNIECG_EDGE_MODEL overrides it). With "
    "--bundle it is used only by --backend torch (the bundle's source checkpoint)."
)
BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")


def model_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--model", "model_dir", type=click.Path(path_type=Path), default=None, help=MODEL_HELP
    )(func)


def bundle_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--bundle", "bundle_dir", type=click.Path(path_type=Path), default=None,
        help="Edge bundle folder (from 'uniecg-edge export'): run it with the on-device runtime. Every file's "
             "checksum is verified first.",
    )(func)


def backend_option(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--provider", "providers", multiple=True, metavar="EP",
        help="onnxruntime execution provider, in order of preference (cpu, cuda, tensorrt or a full name; "
             "repeatable). A provider named here that does not really run is an error.",
    )(func)
    return click.option(
        "--backend", type=click.Choice(BACKENDS), default=None,
        help="Inference backend. With --bundle: auto (default; the fastest available, named in the provenance), "
             "onnxruntime, tensorrt (engines from build-engines) or torch (the bundle's source checkpoint). "
             "Without --bundle: torch.",
    )(func)


def load_runner(model_dir: Path | None, bundle_dir: Path | None = None, backend: str | None = None,
                providers: tuple[str, ...] = ()) -> Any:
    """The object that interprets and generates: the runtime on ``bundle_dir``, else the torch pipeline."""
    if bundle_dir is None:
        if backend not in (None, "torch"):
            raise InputError(f"--backend {backend} needs --bundle DIR (an edge bundle from 'uniecg-edge export')")
        if providers:
            raise InputError("--provider needs --bundle DIR (execution providers are onnxruntime's)")
        return load_pipeline(model_dir)
    chosen = backend or "auto"
    if model_dir is not None and chosen != "torch":
        raise InputError("--model with --bundle is used only by --backend torch")
    if providers and chosen not in ("auto", "onnxruntime"):
        raise InputError(f"--provider applies to the onnxruntime backend, not to --backend {chosen}")
    from ..runtime import EdgeRuntime

    return EdgeRuntime.from_bundle(bundle_dir, backend=chosen, providers=providers or None, model_dir=model_dir)


def load_pipeline(model_dir: Path | None) -> Any:
    """The torch reference pipeline for ``model_dir`` or the default model."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # one-line output; our own bars show long work
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from ..model.default import default_model_dir
    from ..model.pipeline import TorchPipeline

    pipeline = TorchPipeline.from_pretrained(model_dir if model_dir is not None else default_model_dir())
    if not pipeline.model.config.trained:
        log.warning("model %s is untrained: its output is meaningless", pipeline.model.config.name)
    return pipeline
