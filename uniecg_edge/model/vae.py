"""DiffuSETS-shaped 1-D VAE (SD-VAE style): ECG (B, 12, 1024) in mV <-> latent (B, 4, 128), scale 0.18215.

Layout: the package keeps signals channel-first, (B, leads, samples); the published code takes and returns
(B, samples, leads). Each of :class:`VaeEncoder` and :class:`VaeDecoder` holds an ``nn.Sequential`` named
``layers`` whose indices equal the published ``VAE_Encoder`` / ``VAE_Decoder`` indices for the DiffuSETS config,
so a published state dict maps by prefixing ``layers.``. :class:`EcgVae` bundles both for training and for
saving one checkpoint; the device only needs the decoder. All three save and load with ``save_pretrained`` /
``from_pretrained`` (``config.json`` is a :class:`VaeConfig`).

The decoder never modifies its input (the published one divides it by the scale in place).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import Registry
from .pretrained import PretrainedMixin

VAE_PRESETS: Registry[dict[str, object]] = Registry("VAE preset")
VAE_PRESETS.add("diffusets", {})
VAE_PRESETS.add("tiny", {"block_out_channels": (16, 32, 32, 32), "norm_groups": 8})


@dataclass(frozen=True)
class VaeConfig:
    """Shape of the VAE; the defaults are DiffuSETS (``vae_model.pth``)."""

    n_leads: int = 12
    n_samples: int = 1024
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_groups: int = 32
    attention_heads: int = 1
    scale_factor: float = 0.18215
    logvar_min: float = -30.0
    logvar_max: float = 20.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        for name in ("n_leads", "n_samples", "latent_channels", "layers_per_block", "norm_groups", "attention_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"VaeConfig: {name} must be a positive integer, got {value!r}")
        if not self.block_out_channels or any(c % self.norm_groups for c in self.block_out_channels):
            raise ConfigError(
                f"VaeConfig: block_out_channels {self.block_out_channels} must be multiples of norm_groups"
            )
        if self.n_samples % self.downsample_factor:
            raise ConfigError(f"VaeConfig: n_samples {self.n_samples} not divisible by {self.downsample_factor}")
        if self.block_out_channels[-1] % self.attention_heads:
            raise ConfigError("VaeConfig: attention_heads must divide the last channel width")
        if not self.scale_factor > 0 or not self.logvar_min < self.logvar_max:
            raise ConfigError("VaeConfig: scale_factor must be > 0 and logvar_min < logvar_max")

    @classmethod
    def preset(cls, name: str) -> VaeConfig:
        """A named preset: ``diffusets`` or ``tiny``."""
        return cls(**VAE_PRESETS.get(name))  # type: ignore[arg-type]

    @classmethod
    def diffusets(cls) -> VaeConfig:
        return cls.preset("diffusets")

    @classmethod
    def tiny(cls) -> VaeConfig:
        return cls.preset("tiny")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def latent_length(self) -> int:
        return self.n_samples // self.downsample_factor


class ResidualBlock(nn.Module):
    """GroupNorm, SiLU, conv3, GroupNorm, SiLU, conv3, plus the input (1x1 conv when the width changes)."""

    def __init__(self, c_in: int, c_out: int, groups: int) -> None:
        super().__init__()
        self.groupnorm_1 = nn.GroupNorm(groups, c_in)
        self.conv_1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.groupnorm_2 = nn.GroupNorm(groups, c_out)
        self.conv_2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.residual_layer = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_1(F.silu(self.groupnorm_1(x)))
        h = self.conv_2(F.silu(self.groupnorm_2(h)))
        return h + self.residual_layer(x)


class SequenceSelfAttention(nn.Module):
    """Multi-head self-attention with one packed q/k/v projection (``in_proj``) and ``out_proj``."""

    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        head_dim = x.shape[-1] // self.heads
        q, k, v = (p.unflatten(-1, (self.heads, head_dim)).transpose(1, 2) for p in self.in_proj(x).chunk(3, -1))
        weights = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(head_dim), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).flatten(-2))


class AttentionBlock(nn.Module):
    """Self-attention over time with a residual. ``groupnorm`` exists in the published weights but is not applied."""

    def __init__(self, channels: int, groups: int, heads: int) -> None:
        super().__init__()
        self.groupnorm = nn.GroupNorm(groups, channels)
        self.attention = SequenceSelfAttention(heads, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attention(x.transpose(1, 2)).transpose(1, 2)


class RightPaddedDownsample(nn.Conv1d):
    """Stride-2 conv k3 without padding, applied after padding one zero on the right (L -> L/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (0, 1)))


def _encoder_layers(cfg: VaeConfig) -> list[nn.Module]:
    ch, g = cfg.block_out_channels, cfg.norm_groups
    layers: list[nn.Module] = [nn.Conv1d(cfg.n_leads, ch[0], 3, padding=1)]
    width = ch[0]
    for level, c_out in enumerate(ch):
        for _ in range(cfg.layers_per_block):
            layers.append(ResidualBlock(width, c_out, g))
            width = c_out
        if level < len(ch) - 1:
            layers.append(RightPaddedDownsample(width))
    layers += [ResidualBlock(width, width, g), AttentionBlock(width, g, cfg.attention_heads)]
    layers += [ResidualBlock(width, width, g), nn.GroupNorm(g, width), nn.SiLU()]
    z2 = 2 * cfg.latent_channels
    layers += [nn.Conv1d(width, z2, 3, padding=1), nn.Conv1d(z2, z2, 1)]
    return layers


def _decoder_layers(cfg: VaeConfig) -> list[nn.Module]:
    ch, g, z = cfg.block_out_channels, cfg.norm_groups, cfg.latent_channels
    width = ch[-1]
    layers: list[nn.Module] = [nn.Conv1d(z, z, 1), nn.Conv1d(z, width, 3, padding=1)]
    layers += [ResidualBlock(width, width, g), AttentionBlock(width, g, cfg.attention_heads)]
    layers += [ResidualBlock(width, width, g)]
    for level in reversed(range(len(ch))):
        for _ in range(cfg.layers_per_block + 1):
            layers.append(ResidualBlock(width, ch[level], g))
            width = ch[level]
        if level > 0:
            layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv1d(width, width, 3, padding=1)]
    layers += [nn.GroupNorm(g, width), nn.SiLU(), nn.Conv1d(width, cfg.n_leads, 3, padding=1)]
    return layers


class VaeEncoder(PretrainedMixin, nn.Module):
    """ECG (B, leads, samples) in mV -> (mean, logvar), each (B, latent_channels, latent_length), unscaled."""

    config_class: ClassVar[type] = VaeConfig

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.Sequential(*_encoder_layers(config))

    def forward(self, ecg: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.layers(ecg).chunk(2, dim=1)
        return mean, logvar.clamp(self.config.logvar_min, self.config.logvar_max)

    def sample_latent(
        self, mean: Tensor, logvar: Tensor, *, noise: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Scaled latent (mean + σ·ε)·scale, the diffusion model's space; ε from ``noise`` or ``generator``."""
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + torch.exp(0.5 * logvar) * noise) * self.config.scale_factor

    def encode(self, ecg: Tensor, *, generator: torch.Generator | None = None, sample: bool = True) -> Tensor:
        """ECG -> scaled latent; ``sample=False`` returns mean·scale (deterministic)."""
        mean, logvar = self(ecg)
        if not sample:
            return mean * self.config.scale_factor
        return self.sample_latent(mean, logvar, generator=generator)


class VaeDecoder(PretrainedMixin, nn.Module):
    """Scaled latent (B, latent_channels, latent_length) -> ECG (B, leads, samples) in mV. Input left untouched."""

    config_class: ClassVar[type] = VaeConfig

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.Sequential(*_decoder_layers(config))

    def forward(self, latent: Tensor) -> Tensor:
        return self.layers(latent / self.config.scale_factor)  # out of place, unlike the published `x /= 0.18215`


class EcgVae(PretrainedMixin, nn.Module):
    """Encoder and decoder together (training, one checkpoint). ``forward`` returns (reconstruction, mean, logvar)."""

    config_class: ClassVar[type] = VaeConfig

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = VaeEncoder(config)
        self.decoder = VaeDecoder(config)

    def forward(self, ecg: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mean, logvar = self.encoder(ecg)
        latent = self.encoder.sample_latent(mean, logvar, generator=generator)
        return self.decoder(latent), mean, logvar
