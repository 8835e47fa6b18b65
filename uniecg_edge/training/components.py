"""Build the model's components from :class:`~.presets.ModelSizes` and count what the shipped checkpoint holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..model.ecg_encoder import EcgEncoder, EcgEncoderConfig
from ..model.gen_head import GenerationHead, GenHeadConfig
from ..model.llm import build_llm
from ..model.projector import EcgProjector, ProjectorConfig
from ..model.unet import ConditionalUNet1d, UNetConfig
from ..model.vae import EcgVae, VaeConfig
from .presets import STUDENT_MAX_BYTES, ModelSizes
from .text_embed import MINILM_DIM

SHIPPED_COMPONENTS = ("ecg_encoder", "projector", "llm", "gen_head", "unet", "vae_decoder")


@dataclass(frozen=True)
class Vocabulary:
    """What the LLM needs to know of the tokenizer: its size and special ids."""

    size: int
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0

    @classmethod
    def of(cls, tokenizer: Any) -> Vocabulary:
        return cls(len(tokenizer), int(tokenizer.bos_token_id), int(tokenizer.eos_token_id),
                   int(tokenizer.pad_token_id))


def llm_config(sizes: ModelSizes, vocab: Vocabulary) -> dict[str, Any]:
    """A Llama config dict sized by ``sizes`` with the tokenizer's vocabulary and special ids."""
    return {
        "model_type": "llama",
        "vocab_size": vocab.size,
        "hidden_size": sizes.llm_hidden,
        "intermediate_size": sizes.llm_intermediate,
        "num_hidden_layers": sizes.llm_layers,
        "num_attention_heads": sizes.llm_heads,
        "num_key_value_heads": sizes.llm_kv_heads,
        "max_position_embeddings": sizes.llm_max_positions,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": vocab.bos_token_id,
        "eos_token_id": vocab.eos_token_id,
        "pad_token_id": vocab.pad_token_id,
    }


def unet_config(sizes: ModelSizes) -> UNetConfig:
    return UNetConfig(num_levels=sizes.unet_levels, cond_dim=MINILM_DIM, time_embed_dim=sizes.unet_time_embed_dim,
                      time_hidden_dim=sizes.unet_time_hidden_dim,
                      bottleneck_hidden_dim=sizes.unet_bottleneck_hidden_dim,
                      scalar_center=sizes.unet_scalar_center,  # type: ignore[arg-type]
                      scalar_scale=sizes.unet_scalar_scale,  # type: ignore[arg-type]
                      beat_clock_harmonics=sizes.unet_beat_clock_harmonics)


def vae_config(sizes: ModelSizes, scale_factor: float = 0.18215) -> VaeConfig:
    return VaeConfig(block_out_channels=sizes.vae_channels, norm_groups=sizes.vae_norm_groups,
                     scale_factor=scale_factor)


@dataclass
class Components:
    """The trainable parts of one run (the VAE whole: its encoder is needed to make the UNet's latents)."""

    ecg_encoder: EcgEncoder
    projector: EcgProjector
    llm: Any
    gen_head: GenerationHead
    unet: ConditionalUNet1d
    vae: EcgVae

    def shipped(self) -> dict[str, nn.Module]:
        """The modules the checkpoint holds, by component name."""
        return {"ecg_encoder": self.ecg_encoder, "projector": self.projector, "llm": self.llm,
                "gen_head": self.gen_head, "unet": self.unet, "vae_decoder": self.vae.decoder}


def build_components(sizes: ModelSizes, vocab: Vocabulary, seed: int) -> Components:
    """Freshly initialised components; the same sizes, vocabulary and seed give the same weights."""
    torch.manual_seed(seed)
    llm = build_llm(llm_config(sizes, vocab))
    torch.manual_seed(seed + 1)
    encoder = EcgEncoder(EcgEncoderConfig(width=sizes.encoder_width, layers=sizes.encoder_layers,
                                          heads=sizes.encoder_heads))
    projector = EcgProjector(ProjectorConfig.mlp2x(sizes.encoder_width, sizes.llm_hidden))
    gen_head = GenerationHead(GenHeadConfig(num_tokens=sizes.num_ecg_tokens, hidden_dim=sizes.llm_hidden,
                                            cond_dim=MINILM_DIM, mlp_dim=sizes.gen_head_mlp))
    torch.manual_seed(seed + 2)
    unet = ConditionalUNet1d(unet_config(sizes))
    vae = EcgVae(vae_config(sizes))
    return Components(encoder, projector, llm, gen_head, unet, vae)


def parameter_budget(modules: dict[str, nn.Module]) -> dict[str, Any]:
    """Parameters per component, their fp32 bytes, and whether the total fits the student's budget."""
    counts = {name: int(sum(p.numel() for p in module.parameters())) for name, module in modules.items()}
    total = sum(counts.values())
    return {"parameters": counts, "total_parameters": total, "fp32_bytes": 4 * total,
            "fp32_mb": round(4 * total / 1e6, 2), "student_budget_bytes": STUDENT_MAX_BYTES,
            "fits_student_budget": 4 * total <= STUDENT_MAX_BYTES}
