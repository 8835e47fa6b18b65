"""DiffuSETS-shaped conditional 1-D UNet denoiser over the VAE latent (B, 4, 128).

The module tree and parameter names follow the published DiffuSETS ``ECGconditional`` (including its
``bottelneck`` spelling, the unused ``block.down`` convolutions and the frozen sinusoid tables), so a published
state dict loads by name; see :mod:`uniecg_edge.model.diffusets`.

The published cross-attention attends over ONE condition token repeated along the sequence: every key is equal,
the softmax is uniform and the output is V at every position. Each block therefore adds a bias that depends only
on the condition (text embedding + sex, age, heart rate), never on the timestep.
:meth:`ConditionalUNet1d.condition_terms` computes those 13 biases once per sample; :meth:`ConditionalUNet1d.forward`
uses them (the fast, exported path); :meth:`ConditionalUNet1d.forward_with_cross_attention` runs the published
multi-head cross-attention (the reference).

Patient scalars are given raw: sex M=1 / F=0, age in years, heart rate in bpm, each (B, 1, 1). DiffuSETS feeds
them to the condition Linear as they are (the default). ``UNetConfig.scalar_center`` / ``scalar_scale`` standardise
them first, ``(x - center) * scale``, inside the network (so inside the exported graph too). That matters: the
Linear is followed by a LayerNorm, and a heart rate of ~100 that dominates the vector is divided out by that norm,
so a raw rate barely moves the condition (the package's first trained UNet ignored the requested rate).

``UNetConfig.beat_clock_harmonics`` > 0 (the package's own models; 0 = DiffuSETS) adds the beat clock of
:mod:`uniecg_edge.model.beat_clock` to each condition term: a learned projection of sin/cos harmonics of the beat
phase, so the terms become (B, L_block, C_short) and say where along the latent the beats go. The clock follows the
heart-rate input (a regular rhythm) unless training passes the phase of an example's true R peaks.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import Registry
from .beat_clock import clock_features, pooled_features, regular_phase
from .pretrained import PretrainedMixin

logger = logging.getLogger(__name__)

N_PATIENT_SCALARS = 3  # sex, age, heart rate: concatenated after the text embedding in this order

UNET_PRESETS: Registry[dict[str, Any]] = Registry("UNet preset")
UNET_PRESETS.add("diffusets", {})  # paper / experiment code: OpenAI text-embedding-ada-002, D=1536
UNET_PRESETS.add("diffusets_kt", {"cond_dim": 8192})  # PKU web demo ("E-72B" embeddings), D=8192
UNET_PRESETS.add(
    "tiny",
    {"num_levels": 4, "cond_dim": 64, "time_embed_dim": 16, "time_hidden_dim": 32, "bottleneck_hidden_dim": 16},
)


@dataclass(frozen=True)
class BlockSpec:
    """Widths of one UNet block: input, output, conv/attention width, attention hidden size and heads, kernel."""

    c_in: int
    c_out: int
    c_short: int
    hidden: int
    heads: int
    kernel: int


@dataclass(frozen=True)
class UNetConfig:
    """Shape of :class:`ConditionalUNet1d`; the defaults are DiffuSETS (``unet_all.pth``, text dimension 1536)."""

    n_channels: int = 4
    latent_length: int = 128
    num_levels: int = 7
    kernel_size: int = 7
    cond_dim: int = 1536
    num_train_timesteps: int = 1000
    time_embed_dim: int = 64
    time_hidden_dim: int = 128
    num_heads: int = 8
    attn_hidden_factor: int = 2
    bottleneck_kernel_size: int = 3
    bottleneck_heads: int = 4
    bottleneck_hidden_dim: int = 32
    scalar_center: tuple[float, float, float] = (0.0, 0.0, 0.0)  # sex, age, heart rate; DiffuSETS: raw
    scalar_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    beat_clock_harmonics: int = 0  # 0: DiffuSETS (one bias per block); H: sin/cos of k * beat phase, k = 1..H
    beat_clock_window_s: float = 10.0  # seconds the latent covers (the generator window)

    def __post_init__(self) -> None:
        for name in ("scalar_center", "scalar_scale"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != N_PATIENT_SCALARS or not all(math.isfinite(v) for v in values):
                raise ConfigError(f"UNetConfig: {name} must be {N_PATIENT_SCALARS} finite numbers (sex, age, hr)")
            object.__setattr__(self, name, values)
        if not isinstance(self.beat_clock_harmonics, int) or self.beat_clock_harmonics < 0:
            raise ConfigError("UNetConfig: beat_clock_harmonics must be an integer >= 0, "
                              f"got {self.beat_clock_harmonics!r}")
        if not (math.isfinite(self.beat_clock_window_s) and self.beat_clock_window_s > 0):
            raise ConfigError(f"UNetConfig: beat_clock_window_s must be positive, got {self.beat_clock_window_s!r}")
        for field in dataclasses.fields(self):
            if field.name in ("scalar_center", "scalar_scale", "beat_clock_harmonics", "beat_clock_window_s"):
                continue
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"UNetConfig: {field.name} must be a positive integer, got {value!r}")
        if self.num_levels < 2:
            raise ConfigError(f"UNetConfig: num_levels must be at least 2, got {self.num_levels}")
        if self.kernel_size % 2 == 0 or self.bottleneck_kernel_size % 2 == 0:
            raise ConfigError("UNetConfig: kernel sizes must be odd")
        if self.latent_length % 2 ** (self.num_levels - 1):
            raise ConfigError(f"UNetConfig: latent_length {self.latent_length} is not divisible by 2**(num_levels-1)")
        if self.time_embed_dim % 2 or self.time_embed_dim < 4:
            raise ConfigError(f"UNetConfig: time_embed_dim must be even and >= 4, got {self.time_embed_dim}")
        for spec in self.block_specs():
            if spec.hidden % spec.heads:
                raise ConfigError(f"UNetConfig: attention width {spec.hidden} is not divisible by {spec.heads} heads")

    @classmethod
    def preset(cls, name: str) -> UNetConfig:
        """A named preset: ``diffusets`` (D=1536), ``diffusets_kt`` (D=8192) or ``tiny``."""
        return cls(**UNET_PRESETS.get(name))

    @classmethod
    def diffusets(cls) -> UNetConfig:
        return cls.preset("diffusets")

    @classmethod
    def diffusets_kt(cls) -> UNetConfig:
        return cls.preset("diffusets_kt")

    @classmethod
    def tiny(cls) -> UNetConfig:
        return cls.preset("tiny")

    @property
    def num_blocks(self) -> int:
        """Blocks that take a condition term: the down blocks, the bottleneck and the up blocks."""
        return 2 * (self.num_levels - 1) + 1

    def block_levels(self) -> tuple[int, ...]:
        """Resolution level of each conditioned block in network order (0 = full latent length)."""
        n_down = self.num_levels - 1
        return (*range(n_down), n_down, *range(n_down - 1, -1, -1))

    def block_lengths(self) -> tuple[int, ...]:
        """Sequence length each condition term spans: 1 without the beat clock, else the block's latent length."""
        if not self.beat_clock_harmonics:
            return (1,) * self.num_blocks
        return tuple(self.latent_length // 2**level for level in self.block_levels())

    def block_specs(self) -> tuple[BlockSpec, ...]:
        """Per-block widths in network order (downs, bottleneck, ups), as the published constructor builds them."""
        n, levels, f = self.n_channels, self.num_levels, self.attn_hidden_factor
        specs = []
        for i in range(levels - 1):
            c_in, c_out = n * 2**i, n * 2 ** (i + 1)
            specs.append(BlockSpec(c_in, c_out, (c_in + c_out) // 2, f * c_in, self.num_heads, self.kernel_size))
        c_mid = n * 2 ** (levels - 1)
        bottleneck = (self.bottleneck_hidden_dim, self.bottleneck_heads, self.bottleneck_kernel_size)
        specs.append(BlockSpec(c_mid, c_mid, c_mid, *bottleneck))
        for j in range(levels - 1):
            # up 0 takes the bottleneck output alone; the others concatenate a skip of equal width
            c_in = n * 2 ** (levels - 1) if j == 0 else n * 2 ** (levels - j)
            c_out = n * 2 ** (levels - 2 - j)
            specs.append(BlockSpec(c_in, c_out, (c_in + c_out) // 2, f * c_in, self.num_heads, self.kernel_size))
        return tuple(specs)


def sinusoid_table(num_steps: int, dim: int) -> Tensor:
    """DiffuSETS' frozen time table: (t+1) * exp(-i * 10 / (dim/2 - 1)), sin then cos; shape (num_steps, dim)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(10.0 / (half - 1)))
    angles = (torch.arange(num_steps, dtype=torch.float32) + 1)[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class TimeEmbedding(nn.Module):
    """Timestep index -> per-channel bias: frozen sinusoid row, Linear, Mish, Linear."""

    def __init__(self, num_steps: int, channels: int, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, channels)
        self.embeddings = nn.Parameter(sinusoid_table(num_steps, embed_dim), requires_grad=False)

    def forward(self, t: Tensor) -> Tensor:
        return self.fc2(F.mish(self.fc1(self.embeddings[t])))


class MultiheadWeights(nn.Module):
    """The weights of an ``nn.MultiheadAttention`` (same names), with an export-friendly explicit forward."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _project(self, x: Tensor, index: int) -> Tensor:
        rows = slice(index * self.dim, (index + 1) * self.dim)
        return F.linear(x, self.in_proj_weight[rows], self.in_proj_bias[rows])

    def value_path(self, v: Tensor) -> Tensor:
        """What attention returns when every key is equal: out_proj(value projection of v)."""
        return self.out_proj(self._project(v, 2))

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Multi-head attention on (B, L, dim) inputs with explicit matmuls (no fused kernels)."""
        head_dim = self.dim // self.heads
        q = self._project(q, 0).unflatten(-1, (self.heads, head_dim)).transpose(1, 2)
        k = self._project(k, 1).unflatten(-1, (self.heads, head_dim)).transpose(1, 2)
        v = self._project(v, 2).unflatten(-1, (self.heads, head_dim)).transpose(1, 2)
        weights = torch.softmax((q * (1.0 / math.sqrt(head_dim))) @ k.transpose(-1, -2), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).flatten(-2))

    def reference(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """The computation ``nn.MultiheadAttention(batch_first=True)`` performs with these weights."""
        out, _ = F.multi_head_attention_forward(
            q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), self.dim, self.heads,
            self.in_proj_weight, self.in_proj_bias, None, None, False, 0.0,
            self.out_proj.weight, self.out_proj.bias, training=False, need_weights=False,
        )  # fmt: skip
        return out.transpose(0, 1)


class SelfAttention(nn.Module):
    """LayerNorm, q/k/v Linear to the attention width, multi-head attention, Linear back, residual."""

    def __init__(self, channels: int, hidden: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.to_q, self.to_k, self.to_v = (nn.Linear(channels, hidden) for _ in range(3))
        self.to_out = nn.Linear(hidden, channels)
        self.attention = MultiheadWeights(hidden, heads)

    def forward(self, x: Tensor, reference: bool = False) -> Tensor:
        h = self.norm(x)
        attend = self.attention.reference if reference else self.attention
        return self.to_out(attend(self.to_q(h), self.to_k(h), self.to_v(h))) + x


class CrossAttention(nn.Module):
    """Attention from the sequence to the repeated condition token [text, sex, age, hr] -> C_short."""

    def __init__(self, channels: int, hidden: int, heads: int, cond_dim: int, clock_harmonics: int = 0) -> None:
        super().__init__()
        self.normalization = nn.LayerNorm(channels)
        self.to_q, self.to_k, self.to_v = (nn.Linear(channels, hidden) for _ in range(3))
        self.to_out = nn.Linear(hidden, channels)
        self.attention = MultiheadWeights(hidden, heads)
        self.value_combiner = nn.Linear(cond_dim + N_PATIENT_SCALARS, channels)
        self.condition_normalization = nn.LayerNorm(channels)
        # zeros, not a random init: adding the clock draws nothing from the global RNG, so every other weight of a
        # freshly built model (and of the modules built after it) is what it was without the clock
        self.beat_clock = nn.Parameter(torch.zeros(2 * clock_harmonics, channels)) if clock_harmonics else None

    def clock_term(self, features: Tensor) -> Tensor:
        """Pooled clock features (B, L, 2H) -> the position-dependent part of the term, (B, L, C_short)."""
        if self.beat_clock is None:
            raise ValueError("this block has no beat clock (beat_clock_harmonics = 0)")
        return features @ self.beat_clock

    def condition_term(self, condition: Tensor) -> Tensor:
        """The exact additive output for condition (B, 1, D+3): (B, 1, C_short)."""
        c = self.condition_normalization(self.value_combiner(condition))
        return self.to_out(self.attention.value_path(self.to_v(c)))

    def reference(self, x: Tensor, condition: Tensor) -> Tensor:
        """The published computation: real multi-head attention over the condition repeated along L."""
        q = self.to_q(self.normalization(x))
        c = self.condition_normalization(self.value_combiner(condition).repeat(1, x.shape[1], 1))
        return self.to_out(self.attention.reference(q, self.to_k(c), self.to_v(c))) + x


Condition = Tensor | tuple[Tensor, Tensor | None]


def _add_condition(cross: CrossAttention, h: Tensor, condition: Condition, reference: bool) -> Tensor:
    """The fast path adds the precomputed term; the reference runs cross-attention and adds the clock term."""
    if not reference:
        return h + cast(Tensor, condition)
    vector, clock = cast(tuple[Tensor, Tensor | None], condition)
    h = cross.reference(h, vector)
    return h if clock is None else h + clock


class Block(nn.Module):
    """Time bias, conv k -> C_short, GN, Mish, conv 1, self-attn, cross-attn (or its term), LN, conv k -> C_out."""

    def __init__(self, spec: BlockSpec, config: UNetConfig) -> None:
        super().__init__()
        c_in, c_out, c_s, k = spec.c_in, spec.c_out, spec.c_short, spec.kernel
        self.pre_shortcut_convs = nn.Conv1d(c_in, c_s, k, padding=k // 2)
        self.shortcut_convs = nn.Conv1d(c_s, c_s, 1)
        self.post_shortcut_convs = nn.Conv1d(c_s, c_out, k, padding=k // 2)
        self.down = nn.Conv1d(c_out, c_out, 3, 2, padding=1)  # built but never applied by DiffuSETS; kept for loading
        self.layer_norm1 = nn.GroupNorm(1, c_s)
        self.layer_norm2 = nn.GroupNorm(1, c_out)
        self.res_conv = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.self_attention = SelfAttention(c_s, spec.hidden, spec.heads)
        self.cross_attention = CrossAttention(c_s, spec.hidden, spec.heads, config.cond_dim,
                                              config.beat_clock_harmonics)
        self.attention_norm = nn.LayerNorm(c_s)
        self.time_emb = TimeEmbedding(config.num_train_timesteps, c_in, config.time_embed_dim, config.time_hidden_dim)

    def forward(self, x: Tensor, t: Tensor, condition: Condition, reference: bool = False) -> Tensor:
        """``condition`` is this block's term (B, L|1, C_short), or (vector (B, 1, D+3), clock term or None) when
        ``reference``."""
        h = x + self.time_emb(t).unsqueeze(-1)
        h = self.shortcut_convs(F.mish(self.layer_norm1(self.pre_shortcut_convs(h))))
        h = self.self_attention(h.transpose(1, 2), reference)
        h = _add_condition(self.cross_attention, h, condition, reference)
        h = self.attention_norm(h).transpose(1, 2)
        h = F.mish(self.layer_norm2(self.post_shortcut_convs(h)))
        return h + self.res_conv(x)


class BottleneckNet(nn.Module):
    """The bottleneck block: like :class:`Block` at constant width, with two convs before attention."""

    def __init__(self, spec: BlockSpec, config: UNetConfig) -> None:
        super().__init__()
        c, k = spec.c_in, spec.kernel
        self.time_emb = TimeEmbedding(config.num_train_timesteps, c, config.time_embed_dim, config.time_hidden_dim)
        self.bottleneck_conv1 = nn.Conv1d(c, c, k, padding=k // 2)
        self.bottleneck_conv1_2 = nn.Conv1d(c, c, k, padding=k // 2)
        self.bottleneck_conv2 = nn.Conv1d(c, c, k, padding=k // 2)
        self.bottleneck_layer_norm1 = nn.GroupNorm(1, c)
        self.bottleneck_layer_norm2 = nn.GroupNorm(1, c)
        self.attention_norm = nn.LayerNorm(c)
        self.self_attention = SelfAttention(c, spec.hidden, spec.heads)
        self.cross_attention = CrossAttention(c, spec.hidden, spec.heads, config.cond_dim,
                                              config.beat_clock_harmonics)

    def forward(self, x: Tensor, t: Tensor, condition: Condition, reference: bool = False) -> Tensor:
        h = x + self.time_emb(t).unsqueeze(-1)
        h = self.bottleneck_conv1_2(F.mish(self.bottleneck_layer_norm1(self.bottleneck_conv1(h))))
        h = self.self_attention(h.transpose(1, 2), reference)
        h = _add_condition(self.cross_attention, h, condition, reference)
        h = self.attention_norm(h).transpose(1, 2)
        return x + F.mish(self.bottleneck_layer_norm2(self.bottleneck_conv2(h)))


class DownsamplingBlock(nn.Module):
    def __init__(self, spec: BlockSpec, config: UNetConfig) -> None:
        super().__init__()
        self.down = nn.Conv1d(spec.c_out, spec.c_out, 3, 2, padding=1)
        self.block = Block(spec, config)


class UpsamplingBlock(nn.Module):
    def __init__(self, spec: BlockSpec, config: UNetConfig, first: bool) -> None:
        super().__init__()
        self.block = Block(spec, config)
        width = spec.c_in if first else spec.c_in // 2
        self.up = nn.ConvTranspose1d(width, width, kernel_size=4, stride=2, padding=1)


class ConditionalUNet1d(PretrainedMixin, nn.Module):
    """ε-prediction UNet: latent x (B, C, L), timestep t (B,) int64 in [0, T), condition terms -> ε̂ (B, C, L)."""

    config_class: ClassVar[type] = UNetConfig

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        specs = config.block_specs()
        n_down = config.num_levels - 1
        self.downsampling_blocks = nn.ModuleList(DownsamplingBlock(s, config) for s in specs[:n_down])
        self.bottelneck = BottleneckNet(specs[n_down], config)  # published spelling, kept for checkpoint names
        self.upsampling_blocks = nn.ModuleList(
            UpsamplingBlock(s, config, first=j == 0) for j, s in enumerate(specs[n_down + 1 :])
        )
        n = config.n_channels
        self.output_conv = nn.Sequential(nn.Conv1d(specs[-1].c_out, n, 3, padding=1), nn.Mish(), nn.Conv1d(n, n, 1))

    def _downs(self) -> list[DownsamplingBlock]:
        return [cast(DownsamplingBlock, d) for d in self.downsampling_blocks]

    def _ups(self) -> list[UpsamplingBlock]:
        return [cast(UpsamplingBlock, u) for u in self.upsampling_blocks]

    def _conditioned_blocks(self) -> list[Block | BottleneckNet]:
        return [*(d.block for d in self._downs()), self.bottelneck, *(u.block for u in self._ups())]

    def _condition_vector(self, cond: Tensor, sex: Tensor, age: Tensor, hr: Tensor) -> Tensor:
        if cond.dim() != 3 or cond.shape[1] != 1 or cond.shape[2] != self.config.cond_dim:
            raise ValueError(f"cond must be (B, 1, {self.config.cond_dim}), got {tuple(cond.shape)}")
        scalars = [(s.to(cond.dtype).reshape(cond.shape[0], 1, 1) - center) * scale
                   for s, center, scale in zip((sex, age, hr), self.config.scalar_center, self.config.scalar_scale,
                                               strict=True)]
        return torch.cat([cond, *scalars], dim=-1)

    def clock_terms(self, hr: Tensor, phase: Tensor | None = None) -> list[Tensor | None]:
        """Per-block clock terms (B, L_block, C_short), or Nones without a beat clock. ``phase`` (B, 1024): the
        beat phase on the generator grid (training: from true R peaks); default: the regular clock of ``hr``."""
        cfg = self.config
        if not cfg.beat_clock_harmonics:
            return [None] * cfg.num_blocks
        if phase is None:
            phase = regular_phase(hr, cfg.beat_clock_window_s)
        features = clock_features(phase.to(torch.float32), cfg.beat_clock_harmonics)
        lengths = cfg.block_lengths()
        pooled = {length: pooled_features(features, length) for length in set(lengths)}  # a down/up pair shares one
        return [block.cross_attention.clock_term(pooled[length])
                for block, length in zip(self._conditioned_blocks(), lengths, strict=True)]

    def condition_terms(self, cond: Tensor, sex: Tensor, age: Tensor, hr: Tensor,
                        phase: Tensor | None = None) -> tuple[Tensor, ...]:
        """Per-block additive condition terms in network order, independent of t: (B, 1, C_short) each, or
        (B, L_block, C_short) with the beat clock (``phase`` as in :meth:`clock_terms`)."""
        vector = self._condition_vector(cond, sex, age, hr)
        clocks = self.clock_terms(hr, phase)
        terms = [block.cross_attention.condition_term(vector) for block in self._conditioned_blocks()]
        return tuple(term if clock is None else term + clock.to(term.dtype)
                     for term, clock in zip(terms, clocks, strict=True))

    def _run(self, x: Tensor, t: Tensor, conditions: list[Condition] | tuple[Tensor, ...], reference: bool) -> Tensor:
        blocks = self._conditioned_blocks()
        if len(conditions) != len(blocks):
            raise ValueError(f"expected {len(blocks)} condition terms, got {len(conditions)}")
        skips = []
        h = x
        for i, down in enumerate(self._downs()):
            skip = down.block(h, t, conditions[i], reference)
            skips.append(skip)
            h = down.down(skip)
        n_down = len(self.downsampling_blocks)
        h = self.bottelneck(h, t, conditions[n_down], reference)
        for j, up in enumerate(self._ups()):
            h = up.up(h)
            if j > 0:
                h = torch.cat([h, skips[n_down - 1 - j]], dim=1)
            h = up.block(h, t, conditions[n_down + 1 + j], reference)
        return self.output_conv(h)

    def forward(self, x: Tensor, t: Tensor, terms: tuple[Tensor, ...]) -> Tensor:
        """Noise estimate from the precomputed :meth:`condition_terms` (the exported fast path)."""
        return self._run(x, t, terms, reference=False)

    def forward_with_cross_attention(
        self, x: Tensor, t: Tensor, cond: Tensor, sex: Tensor, age: Tensor, hr: Tensor, phase: Tensor | None = None
    ) -> Tensor:
        """Noise estimate computed as published: multi-head cross-attention over the repeated condition (plus the
        beat clock's terms when the config has one)."""
        vector = self._condition_vector(cond, sex, age, hr)
        return self._run(x, t, [(vector, clock) for clock in self.clock_terms(hr, phase)], reference=True)
