"""The default model used when no ``--model`` is given.

Until the trained model ships (a later release), this is a small, **untrained** UniECG with the full
architecture, created deterministically from a seed and cached on disk. Its reports and ECGs are noise:
``provenance.trained`` is ``false`` and ``--help`` says so. It samples with 50 DDIM steps by default;
``generate --scheduler ddpm --steps 1000`` runs the 1000-step DDPM reference.
"""

from __future__ import annotations

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


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "uniecg-edge"))


def build_default_model(seed: int = DEFAULT_SEED) -> UniEcgModel:
    """Build the untrained default model; the same seed gives the same weights and tokenizer."""
    tokenizer = train_tokenizer(report_sentences(), vocab_size=1000, k=NUM_ECG_TOKENS)
    torch.manual_seed(seed)
    llm = build_llm(tiny_llama(vocab_size=len(tokenizer)))
    resize_for_tokenizer(llm, tokenizer)
    width = hidden_size(llm)
    encoder_cfg = EcgEncoderConfig.tiny()
    unet_cfg = UNetConfig.tiny()
    torch.manual_seed(seed + 1)
    encoder = EcgEncoder(encoder_cfg)
    projector = EcgProjector(ProjectorConfig(in_dim=encoder_cfg.width, hidden_dim=width, out_dim=width, mid_dim=None))
    gen_head = GenerationHead(GenHeadConfig(num_tokens=NUM_ECG_TOKENS, hidden_dim=width,
                                            cond_dim=unet_cfg.cond_dim, mlp_dim=2 * width))
    unet = ConditionalUNet1d(unet_cfg)
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


def default_model_dir(seed: int = DEFAULT_SEED) -> Path:
    """The cached default model folder, built on first use (atomically, so concurrent first uses are safe)."""
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
