"""The default model used when no ``--model`` is given.

:func:`default_model_dir` is the trained edge model shipped in the package (:mod:`.shipped`, verified against its
``SHA256SUMS``). A source tree without it (before the recipe's model was packaged) falls back to
:func:`untrained_model_dir`: a tiny, **untrained** UniECG with the full architecture, created deterministically
from a seed and cached on disk, whose reports and ECGs are noise (``provenance.trained`` is ``false``). The tests
use the untrained one: it is small and fast, and its output is not what they check.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .. import __version__
from .corpus import report_sentences
from .ecg_encoder import EcgEncoder, EcgEncoderConfig
from .gen_head import GenerationHead, GenHeadConfig
from .llm import build_llm, hidden_size, resize_for_tokenizer, tiny_llama
from .projector import EcgProjector, ProjectorConfig
from .schedulers import SchedulerConfig
from .tokenizer import train_tokenizer
from .unet import ConditionalUNet1d, UNetConfig
from .uniecg import UniEcgConfig, UniEcgModel
from .vae import VaeConfig, VaeDecoder

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
DEFAULT_NAME = "uniecg-edge-default-untrained"
NUM_ECG_TOKENS = 4
CACHE_ENV = "UNIECG_EDGE_CACHE"
MODEL_ENV = "UNIECG_EDGE_MODEL"
UNTRAINED = "untrained"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "uniecg-edge"))


def _randomise_beat_clock(unet: ConditionalUNet1d, seed: int) -> None:
    """The clock weights start at zero (see model/unet.py); random ones make exports and parity checks exercise
    the position-dependent condition terms."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.endswith("beat_clock"):
                param.copy_(0.1 * torch.randn(param.shape, generator=gen))


def build_default_model(seed: int = DEFAULT_SEED) -> UniEcgModel:
    """Build the untrained default model; the same seed gives the same weights and tokenizer."""
    tokenizer = train_tokenizer(report_sentences(), vocab_size=1000, k=NUM_ECG_TOKENS)
    torch.manual_seed(seed)
    llm = build_llm(tiny_llama(vocab_size=len(tokenizer)))
    resize_for_tokenizer(llm, tokenizer)
    width = hidden_size(llm)
    encoder_cfg = EcgEncoderConfig.tiny()
    unet_cfg = dataclasses.replace(UNetConfig.tiny(), beat_clock_harmonics=2)  # like the package's trained models
    torch.manual_seed(seed + 1)
    encoder = EcgEncoder(encoder_cfg)
    projector = EcgProjector(ProjectorConfig(in_dim=encoder_cfg.width, hidden_dim=width, out_dim=width, mid_dim=None))
    gen_head = GenerationHead(GenHeadConfig(num_tokens=NUM_ECG_TOKENS, hidden_dim=width,
                                            cond_dim=unet_cfg.cond_dim, mlp_dim=2 * width))
    unet = ConditionalUNet1d(unet_cfg)
    _randomise_beat_clock(unet, seed)
    vae_decoder = VaeDecoder(VaeConfig.tiny())
    config = UniEcgConfig(
        name=DEFAULT_NAME, num_ecg_tokens=NUM_ECG_TOKENS, max_new_tokens=64, trained=False,
        licence="Apache-2.0 (random weights)",
        description="Untrained, randomly initialised from a seed: the architecture only. Output is meaningless.",
    )
    model = UniEcgModel(config, ecg_encoder=encoder, projector=projector, llm=llm, tokenizer=tokenizer,
                        gen_head=gen_head, unet=unet, vae_decoder=vae_decoder,
                        scheduler=SchedulerConfig(kind="ddim", num_inference_steps=50))
    return model.eval()


def default_model_dir() -> Path:
    """The model commands use without ``--model``.

    ``$UNIECG_EDGE_MODEL`` overrides it: a checkpoint folder, or ``untrained`` for the tiny untrained model (the
    test suite's choice). Otherwise the shipped trained model (verified), or the untrained one where the package
    carries none.
    """
    from .shipped import is_shipped, verified_shipped_model

    chosen = os.environ.get(MODEL_ENV, "").strip()
    if chosen == UNTRAINED:
        return untrained_model_dir()
    if chosen:
        return Path(chosen)
    if is_shipped():
        return verified_shipped_model()
    log.warning("this installation carries no trained model: using the untrained default (output is meaningless)")
    return untrained_model_dir()


def untrained_model_dir(seed: int = DEFAULT_SEED) -> Path:
    """The cached untrained model folder, built on first use (atomically, so concurrent first uses are safe)."""
    target = cache_root() / "models" / f"{DEFAULT_NAME}-{__version__}-seed{seed}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("building the untrained default model in %s", target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".building-"))
    try:
        build_default_model(seed).save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
