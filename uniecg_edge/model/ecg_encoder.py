"""ECG encoder: a ViT-style transformer over 50-sample patches of all 12 leads (GEM's ECG-CoCa ECG tower shape).

``(B, n_leads, seq_length)`` raw mV -> ``(B, 1 + seq_length // patch_size, width)``: the class token followed by
one token per patch, taken after the last transformer block (no final LayerNorm, no pooling), which is what
GEM feeds its projector (model-facts §2.1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .pretrained import PretrainedMixin

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EcgEncoderConfig:
    """Shape of the ECG encoder; ``gem()`` is the published ECG-CoCa tower (12 x 5000 -> 101 x 768)."""

    n_leads: int = 12
    seq_length: int = 5000
    patch_size: int = 50
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        for name in ("n_leads", "seq_length", "patch_size", "width", "layers", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"EcgEncoderConfig: {name} must be a positive integer, got {value!r}")
        if self.seq_length % self.patch_size:
            raise ConfigError(
                f"EcgEncoderConfig: seq_length {self.seq_length} is not a multiple of patch_size {self.patch_size}"
            )
        if self.width % self.heads:
            raise ConfigError(f"EcgEncoderConfig: width {self.width} is not divisible by heads {self.heads}")
        if self.mlp_ratio <= 0 or round(self.width * self.mlp_ratio) < 1:
            raise ConfigError(f"EcgEncoderConfig: mlp_ratio must be positive, got {self.mlp_ratio!r}")

    @property
    def num_patches(self) -> int:
        return self.seq_length // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Tokens out of the encoder: the class token plus one per patch."""
        return 1 + self.num_patches

    @property
    def mlp_width(self) -> int:
        return round(self.width * self.mlp_ratio)

    @classmethod
    def gem(cls) -> EcgEncoderConfig:
        """GEM / ECG-R1's ECG-CoCa tower: 12 leads x 5000 samples, patch 50, width 768, 12 layers, 12 heads."""
        return cls()

    @classmethod
    def tiny(cls) -> EcgEncoderConfig:
        """A small encoder with the same input and token count as GEM's, for tests and the default model."""
        return cls(width=64, layers=2, heads=4)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection (no mask: every token sees every token)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, L, head_dim)
        return self.proj(attended.transpose(1, 2).reshape(batch, length, width))


class FeedForward(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, width: int, heads: int, mlp_width: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = FeedForward(width, mlp_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EcgEncoder(PretrainedMixin, nn.Module):
    """Patch embedding (Conv1d over all leads, kernel = stride = patch, no bias) + class token + learned
    positions -> LayerNorm -> pre-LN transformer blocks; returns every token of the last block."""

    config_class = EcgEncoderConfig

    def __init__(self, config: EcgEncoderConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.patch_embed = nn.Conv1d(
            config.n_leads, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False
        )
        scale = width**-0.5
        self.cls_token = nn.Parameter(scale * torch.randn(width))
        self.pos_embed = nn.Parameter(scale * torch.randn(config.num_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(EncoderBlock(width, config.heads, config.mlp_width) for _ in range(config.layers))

    @property
    def num_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def width(self) -> int:
        return self.config.width

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        """``ecg`` (B, n_leads, seq_length) in mV -> tokens (B, 1 + seq_length // patch_size, width)."""
        if ecg.dim() != 3 or ecg.shape[1] != self.config.n_leads or ecg.shape[2] != self.config.seq_length:
            raise ValueError(
                f"EcgEncoder expects (batch, {self.config.n_leads}, {self.config.seq_length}), got {tuple(ecg.shape)}"
            )
        patches = self.patch_embed(ecg).transpose(1, 2)  # (B, num_patches, width)
        cls = self.cls_token.to(patches.dtype).expand(patches.shape[0], 1, -1)
        x = torch.cat([cls, patches], dim=1) + self.pos_embed.to(patches.dtype)
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return x
