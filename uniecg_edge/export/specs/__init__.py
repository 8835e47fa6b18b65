"""One small module per exported graph; importing this package registers them all in ``GRAPH_SPECS``."""

from __future__ import annotations

from . import decoder, ecg_encoder, embed_tokens, gen_head, unet, unet_cond, vae_decoder

__all__ = ["decoder", "ecg_encoder", "embed_tokens", "gen_head", "unet", "unet_cond", "vae_decoder"]
