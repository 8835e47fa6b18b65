"""Generation head: hidden states of the K ``[ECG_i]`` tokens -> one condition vector for the ECG diffusion decoder.

UniECG's head is unpublished (model-facts §1.2); this is the package's own design, in the GILL / NExT-GPT
pattern of §1.3. For ``states`` (B, K, H):

1. ``x = LayerNorm(states)`` (the LLM's last-layer states have large, model-dependent scales);
2. per token, ``v_k = Linear(mlp_dim -> D)(GELU(Linear(H -> mlp_dim)(x_k)))``: the value each token proposes;
3. per token, a scalar score ``s_k = Linear(H -> 1)(x_k)``; weights ``softmax_k(s)`` over the K tokens;
4. ``cond = sum_k softmax(s)_k * v_k`` -> (B, 1, D), optionally L2-normalised (ada-002 embeddings have unit norm).

Scores come from the tokens themselves rather than from one learned weight per position, so the head accepts
any K >= 1 (``num_tokens`` is the K the tokenizer and runtime use, not a shape constraint); with K = 1 it is a
plain 2-layer MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .pretrained import PretrainedMixin


@dataclass(frozen=True)
class GenHeadConfig:
    """K ``[ECG_i]`` tokens of LLM width ``hidden_dim`` -> one ``cond_dim`` vector (1536 for DiffuSETS' ada-002)."""

    num_tokens: int
    hidden_dim: int
    cond_dim: int
    mlp_dim: int
    l2_normalize: bool = False

    def __post_init__(self) -> None:
        for name in ("num_tokens", "hidden_dim", "cond_dim", "mlp_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"GenHeadConfig: {name} must be a positive integer, got {value!r}")

    @classmethod
    def diffusets(cls, hidden_dim: int, num_tokens: int = 8, cond_dim: int = 1536) -> GenHeadConfig:
        """Into DiffuSETS' text space (ada-002, 1536-d); MLP as wide as the LLM."""
        return cls(num_tokens=num_tokens, hidden_dim=hidden_dim, cond_dim=cond_dim, mlp_dim=hidden_dim)

    @classmethod
    def tiny(cls) -> GenHeadConfig:
        return cls(num_tokens=4, hidden_dim=64, cond_dim=32, mlp_dim=64)


class GenerationHead(PretrainedMixin, nn.Module):
    """``forward(ecg_token_states (B, K, H)) -> cond (B, 1, D)``; see the module docstring for the design."""

    config_class = GenHeadConfig

    def __init__(self, config: GenHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.hidden_dim)
        self.fc1 = nn.Linear(config.hidden_dim, config.mlp_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.mlp_dim, config.cond_dim)
        self.score = nn.Linear(config.hidden_dim, 1)

    def forward(self, ecg_token_states: torch.Tensor) -> torch.Tensor:
        if ecg_token_states.dim() != 3 or ecg_token_states.shape[-1] != self.config.hidden_dim:
            raise ValueError(
                f"GenerationHead expects (batch, K, {self.config.hidden_dim}), got {tuple(ecg_token_states.shape)}"
            )
        x = self.norm(ecg_token_states)
        values = self.fc2(self.act(self.fc1(x)))  # (B, K, D)
        weights = torch.softmax(self.score(x), dim=1)  # (B, K, 1)
        cond = (weights * values).sum(dim=1, keepdim=True)  # (B, 1, D)
        if self.config.l2_normalize:
            cond = F.normalize(cond, dim=-1)
        return cond
