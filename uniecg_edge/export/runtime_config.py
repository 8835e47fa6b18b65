"""The bundle's ``config.json``: everything the on-device runtime needs, with no torch (bundle contract)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..preprocess import GENERATOR_FS, GENERATOR_SAMPLES

if TYPE_CHECKING:
    from ..model.uniecg import UniEcgModel


@dataclass(frozen=True)
class LlmGeometry:
    """Shapes of the decoder graph: widths, layers, KV heads, vocabulary, longest context."""

    hidden_size: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int


def llm_geometry(llm: Any) -> LlmGeometry:
    """Read the decoder shapes from a transformers causal LM (its text config for multimodal configs)."""
    config = llm.config.get_text_config() if hasattr(llm.config, "get_text_config") else llm.config
    heads = int(config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
    output = llm.get_output_embeddings()
    vocab = int(output.weight.shape[0]) if output is not None else int(config.vocab_size)
    return LlmGeometry(
        hidden_size=int(config.hidden_size),
        num_layers=int(config.num_hidden_layers),
        num_kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
        head_dim=int(head_dim),
        vocab_size=vocab,
        max_positions=int(getattr(config, "max_position_embeddings", 2048) or 2048),
    )


def cond_term_widths(model: UniEcgModel) -> list[int]:
    """Width C_j of each UNet condition term (B, L_j, C_j), in network order."""
    return [spec.c_short for spec in model.unet.config.block_specs()]


def cond_term_lengths(model: UniEcgModel) -> list[int]:
    """Length L_j of each UNet condition term: 1, or the block's latent length when the UNet has a beat clock."""
    return list(model.unet.config.block_lengths())


def build_runtime_config(model: UniEcgModel) -> dict[str, Any]:
    """The ``config.json`` of a bundle for ``model`` (keys of the bundle contract)."""
    geometry = llm_geometry(model.llm)
    cfg = model.config
    tokenizer = model.tokenizer
    unet_cfg = model.unet.config
    return {
        "name": cfg.name,
        "num_ecg_tokens": cfg.num_ecg_tokens,
        "ecg_token_id": model.ecg_token_id,
        "gen_token_ids": list(model.gen_token_ids),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": model.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": geometry.vocab_size,
        "hidden_size": geometry.hidden_size,
        "num_layers": geometry.num_layers,
        "num_kv_heads": geometry.num_kv_heads,
        "head_dim": geometry.head_dim,
        "max_positions": geometry.max_positions,
        "num_ecg_embeddings": model.ecg_encoder.num_tokens,
        "cond_dim": unet_cfg.cond_dim,
        "latent_channels": unet_cfg.n_channels,
        "latent_length": unet_cfg.latent_length,
        "num_cond_terms": unet_cfg.num_blocks,
        "cond_term_widths": cond_term_widths(model),
        "cond_term_lengths": cond_term_lengths(model),
        "fs": cfg.fs,
        "num_samples": cfg.num_samples,
        "leads": list(cfg.leads),
        "generator_fs": GENERATOR_FS,
        "generator_samples": GENERATOR_SAMPLES,
        "prompt": cfg.to_dict()["prompt"],
        "max_new_tokens": cfg.max_new_tokens,
        "trained": cfg.trained,
        "grounded": cfg.grounded,
        "licence": cfg.licence,
    }
