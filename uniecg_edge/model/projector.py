"""Projector from ECG-encoder tokens into the LLM's embedding width.

GEM (model-facts §2.1): ``ecg_projector`` Linear 768 -> 1024 into the image feature width, then the shared
LLaVA ``mm_projector`` (mlp2x_gelu: Linear 1024 -> 4096, GELU, Linear 4096 -> 4096). ECG-R1 and ECG-Chat use the
mlp2x_gelu alone, straight from 768. Here ``bridge`` is the optional first Linear, ``fc1``/``fc2`` the MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .pretrained import PretrainedMixin


@dataclass(frozen=True)
class ProjectorConfig:
    """``in_dim`` -> [``mid_dim`` (Linear, optional)] -> ``hidden_dim`` (Linear, GELU) -> ``out_dim`` (Linear)."""

    in_dim: int
    hidden_dim: int
    out_dim: int
    mid_dim: int | None = None

    def __post_init__(self) -> None:
        for name in ("in_dim", "hidden_dim", "out_dim", "mid_dim"):
            value = getattr(self, name)
            if value is None and name == "mid_dim":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ProjectorConfig: {name} must be a positive integer, got {value!r}")

    @classmethod
    def gem(cls) -> ProjectorConfig:
        """GEM: 768 -> 1024 (ecg_projector) -> 4096 -> 4096 (mm_projector): 787,456 + 20,979,712 parameters."""
        return cls(in_dim=768, hidden_dim=4096, out_dim=4096, mid_dim=1024)

    @classmethod
    def mlp2x(cls, in_dim: int, out_dim: int) -> ProjectorConfig:
        """ECG-R1 / LLaVA ``mlp2x_gelu``: in -> out (GELU) -> out, no bridge Linear."""
        return cls(in_dim=in_dim, hidden_dim=out_dim, out_dim=out_dim)


class EcgProjector(PretrainedMixin, nn.Module):
    """Maps ECG tokens (B, N, in_dim) to LLM input embeddings (B, N, out_dim), token by token."""

    config_class = ProjectorConfig

    def __init__(self, config: ProjectorConfig) -> None:
        super().__init__()
        self.config = config
        mlp_in = config.in_dim
        self.bridge: nn.Linear | None = None
        if config.mid_dim is not None:
            self.bridge = nn.Linear(config.in_dim, config.mid_dim)
            mlp_in = config.mid_dim
        self.fc1 = nn.Linear(mlp_in, config.hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.hidden_dim, config.out_dim)

    def forward(self, ecg_tokens: torch.Tensor) -> torch.Tensor:
        x = ecg_tokens if self.bridge is None else self.bridge(ecg_tokens)
        return self.fc2(self.act(self.fc1(x)))
