"""The recipe's frozen configuration: model sizes, data sizes and the settings of every training stage.

Presets (``RECIPE_PRESETS``):

* ``smoke``: a toy run of every stage in well under a minute (tests).
* ``student``: the shipped default model, <= 25 MB of fp32 weights in the checkpoint (see :func:`parameter_budget`).
* ``small`` (alias ``teacher``): >= 4x the student's parameters, the teacher for distillation; the full recipe.

The whole :class:`RecipeConfig` is written to ``training_config.json`` beside the checkpoint; ``--resume``
refuses a folder whose saved config differs from the one asked for.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .augment import AugmentConfig
from .dataset import DataConfig

STUDENT_MAX_BYTES = 25_000_000  # fp32 weights of the shipped model (ecg_encoder .. vae_decoder)


@dataclass(frozen=True)
class ModelSizes:
    """Widths and depths of every component (patch 50 on 12 x 5000, latent 4 x 128 are fixed by the design)."""

    encoder_width: int = 128
    encoder_layers: int = 4
    encoder_heads: int = 4
    llm_hidden: int = 256
    llm_intermediate: int = 688
    llm_layers: int = 4
    llm_heads: int = 8
    llm_kv_heads: int = 4
    llm_max_positions: int = 1024
    vocab_size: int = 1024
    num_ecg_tokens: int = 4
    gen_head_mlp: int = 256
    unet_levels: int = 5
    unet_time_embed_dim: int = 16
    unet_time_hidden_dim: int = 32
    unet_bottleneck_hidden_dim: int = 32
    vae_channels: tuple[int, ...] = (32, 64, 64, 64)
    vae_norm_groups: int = 16
    # sex, age, heart rate standardised inside the UNet, (x - center) * scale (see model/unet.py for why)
    unet_scalar_center: tuple[float, ...] = (0.5, 50.0, 80.0)
    unet_scalar_scale: tuple[float, ...] = (2.0, 0.05, 1.0 / 30.0)
    unet_beat_clock_harmonics: int = 0  # harmonics of the beat phase in the UNet condition (model/beat_clock.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vae_channels", tuple(int(c) for c in self.vae_channels))
        for name in ("unet_scalar_center", "unet_scalar_scale"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))


@dataclass(frozen=True)
class Stage1Config:
    """ECG -> text. ``encoder_steps`` first train the encoder alone on the truth (an auxiliary probe: rate,
    intervals, axis, labels), then ``steps`` train encoder, projector and LLM on (ECG, report) pairs with the
    language-model loss on the answer tokens plus ``aux_weight`` x the probe loss. ``ground_steps`` > 0 adds a third
    phase that continues encoder, projector and LLM on prompts carrying the DSP's evidence line (``grounding.py``)
    for a ``ground_fraction`` of the examples, and marks the model ``grounded``. ``ground_tremor_fraction`` of the
    grounding phase's ECGs carry a limb tremor (``AugmentConfig.tremor_fraction``), a look-alike of fibrillatory
    waves, so that the rhythm is read from RR regularity and P waves (the line's evidence) rather than the baseline.
    ``ground_morphology_fraction`` of them have reshaped P and T waves (``AugmentConfig.morphology_fraction``), and
    ``ground_partial_fraction`` of the prompts with a line show the model only ``ground_partial_s`` seconds of the
    ECG (``augment.partial_view``; the line is measured on all of it; 0 in the presets: tried, it did not improve
    the rhythm words on real records, README). ``ground_swap_fraction`` of the prompts with a line show
    the ECG re-simulated with the counterpart rhythm (sinus <-> atrial fibrillation,
    ``scenarios.rhythm_counterpart``) under the original's line and report, so the rhythm is taken from the
    line's RR regularity and P waves, not from beat shapes the simulator does not cover.
    ``ground_boundary_rate_fraction`` of the sinus ECGs get a rate near the bradycardia and tachycardia limits
    (``AugmentConfig.boundary_rate_fraction``)."""

    encoder_steps: int = 300
    encoder_batch: int = 32
    encoder_lr: float = 1e-3
    steps: int = 1500
    batch_size: int = 8
    lr: float = 6e-4
    aux_weight: float = 0.3
    warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    ground_steps: int = 0
    ground_fraction: float = 0.75
    ground_lr: float = 3e-4
    ground_tremor_fraction: float = 0.0
    ground_morphology_fraction: float = 0.0
    ground_partial_fraction: float = 0.0
    ground_partial_s: tuple[float, float] = (3.0, 6.0)
    ground_swap_fraction: float = 0.0
    ground_boundary_rate_fraction: float = 0.0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ground_partial_s", tuple(float(v) for v in self.ground_partial_s))
        low, high = self.ground_partial_s
        if not 0 < low <= high <= 10:
            raise ConfigError(f"Stage1Config: ground_partial_s must be 0 < low <= high <= 10, got {(low, high)}")
        for name in ("ground_fraction", "ground_tremor_fraction", "ground_morphology_fraction",
                     "ground_partial_fraction", "ground_swap_fraction", "ground_boundary_rate_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"Stage1Config: {name} must be in 0..1, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class VaeTrainConfig:
    """Stage 2a: sum-squared-error / B + w x KL / B, w rising linearly to ``kl_weight`` (DiffuSETS' loss form)."""

    steps: int = 800
    batch_size: int = 32
    lr: float = 1e-3
    kl_weight: float = 1.0
    kl_warmup_fraction: float = 0.5
    grad_clip: float = 1.0


@dataclass(frozen=True)
class UnetTrainConfig:
    """Stage 2b: DDPM epsilon loss, t ~ U{1..998}, condition = text embedding x ``text_scale`` (+ noise)."""

    steps: int = 2500
    batch_size: int = 64
    lr: float = 1e-3
    cond_noise_std: float = 0.1  # Gaussian noise on the scaled text condition: robustness to the head's error
    grad_clip: float = 1.0


@dataclass(frozen=True)
class AlignConfig:
    """Stage 2c: the generate prompt + request + [ECG_0..K-1] -> hidden states -> head ~ MiniLM(request).

    loss = ``lm_weight`` x CE([ECG] tokens) + ``mse_weight`` x ||c - e||^2 / D + ``cos_weight`` x (1 - cos(c, e)),
    plus, every ``replay_every`` steps, the stage-1 loss on an interpret batch so the LLM keeps its reports.
    """

    steps: int = 800
    batch_size: int = 16
    lr_head: float = 1e-3
    lr_llm: float = 2e-4
    train_llm: bool = True
    lm_weight: float = 1.0
    mse_weight: float = 1.0
    cos_weight: float = 1.0
    replay_every: int = 2
    replay_batch: int = 4
    grad_clip: float = 1.0


@dataclass(frozen=True)
class EvalConfig:
    """What the final evaluation decodes and generates (held-out ``eval`` stream)."""

    interpret_examples: int = 24
    generate_examples: int = 8
    generate_steps: int = 50
    loss_examples: int = 32


@dataclass(frozen=True)
class RecipeConfig:
    """Everything that determines a run besides the seed's data: saved as ``training_config.json``."""

    preset: str = "student"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    sizes: ModelSizes = field(default_factory=ModelSizes)
    corpus_size: int = 3000
    pool_size: int = 6144
    text_scale: float = math.sqrt(384.0)  # MiniLM rows have unit norm: this gives ~unit-variance components
    stage1: Stage1Config = field(default_factory=Stage1Config)
    vae: VaeTrainConfig = field(default_factory=VaeTrainConfig)
    unet: UnetTrainConfig = field(default_factory=UnetTrainConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sampler_steps: int = 50  # the shipped scheduler: DDIM with this many steps, no x0 clipping
    log_every: int = 10
    checkpoint_every_s: float = 300.0

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecipeConfig:
        parts = {"data": DataConfig, "sizes": ModelSizes, "stage1": Stage1Config, "vae": VaeTrainConfig,
                 "unet": UnetTrainConfig, "align": AlignConfig, "eval": EvalConfig}
        values = dict(data)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"training config: unknown keys {', '.join(unknown)}")
        for name, part in parts.items():
            if name in values:
                values[name] = _build(part, values[name], name)
        return cls(**values)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"training config {where}: unknown keys {', '.join(unknown)}")
    values = dict(data)
    if cls is DataConfig and isinstance(values.get("augment"), dict):
        from .augment import AugmentConfig

        values["augment"] = AugmentConfig(**values["augment"])
    return cls(**values)


SMOKE_SIZES = ModelSizes(
    encoder_width=32, encoder_layers=1, encoder_heads=2, llm_hidden=32, llm_intermediate=64, llm_layers=1,
    llm_heads=2, llm_kv_heads=1, llm_max_positions=1024, vocab_size=330, gen_head_mlp=32, unet_levels=3,
    unet_time_embed_dim=8, unet_time_hidden_dim=16, unet_bottleneck_hidden_dim=8, vae_channels=(8, 16, 16, 16),
    vae_norm_groups=4, unet_beat_clock_harmonics=3,
)
STUDENT_SIZES = ModelSizes(unet_beat_clock_harmonics=3)
TEACHER_SIZES = ModelSizes(
    encoder_width=256, encoder_layers=6, encoder_heads=8, llm_hidden=448, llm_intermediate=1216, llm_layers=6,
    llm_heads=8, llm_kv_heads=4, gen_head_mlp=448, unet_levels=6, unet_time_embed_dim=32, unet_time_hidden_dim=64,
    unet_bottleneck_hidden_dim=32, vae_channels=(64, 128, 128, 128), vae_norm_groups=16,
    unet_beat_clock_harmonics=3,
)

RECIPE_PRESETS: Registry[dict[str, Any]] = Registry("recipe preset")
RECIPE_PRESETS.add("smoke", {
    "sizes": SMOKE_SIZES, "corpus_size": 48, "pool_size": 12, "log_every": 2,
    "stage1": Stage1Config(encoder_steps=3, encoder_batch=4, steps=6, batch_size=2, ground_steps=2,
                           ground_tremor_fraction=0.5, ground_morphology_fraction=0.5, ground_partial_fraction=0.5,
                           ground_swap_fraction=0.5, ground_boundary_rate_fraction=0.5),
    "vae": VaeTrainConfig(steps=4, batch_size=4),
    "unet": UnetTrainConfig(steps=4, batch_size=8),
    "align": AlignConfig(steps=4, batch_size=4, replay_every=2, replay_batch=2),
    "eval": EvalConfig(interpret_examples=1, generate_examples=1, generate_steps=4, loss_examples=2),
    "sampler_steps": 10,
})
# Step counts from timed short runs (core-seconds per step on the 2-core x86-64 development machine, 1 thread):
# student: encoder 0.44, LM 1.12, VAE 0.41, UNet 0.33, align 1.26; teacher: 1.3, 3.75, 1.0, 0.28, 4.4.
# The grounding phase's augmentations (README, "Rhythm words"): a limb tremor on 30 %, small or absent-looking P
# waves (P scaled 0-0.4) with reshaped T waves on 60 %, the counterpart rhythm's ECG under half of the evidence lines,
# and half of the sinus ECGs at rates near 60 and 100 bpm. Rhythm words on the 21 labelled CinC records, each from
# the same language-model phase, as the grounding phase leaves them: tremor alone 48 %, + P/T 57 %, + swap 0.5
# 76 %, + boundary rates 86 % (76 % after the [ECG]-token alignment; 90 % once the evidence line stated the rate's
# band, grounding.rate_band).
GROUNDING: dict[str, Any] = {"ground_tremor_fraction": 0.3, "ground_morphology_fraction": 0.6,
                             "ground_swap_fraction": 0.5, "ground_boundary_rate_fraction": 0.5}
GROUNDING_DATA = DataConfig(augment=AugmentConfig(p_scale_range=(0.0, 0.4)))
RECIPE_PRESETS.add("student", {
    "sizes": STUDENT_SIZES, "pool_size": 4096, "data": GROUNDING_DATA,
    "stage1": Stage1Config(encoder_steps=600, steps=2500, batch_size=8, lr=6e-4, ground_steps=900,
                           ground_lr=6e-4, **GROUNDING),
    "vae": VaeTrainConfig(steps=800, batch_size=32, lr=1e-3),
    "unet": UnetTrainConfig(steps=10000, batch_size=64, lr=1e-3),  # 3000: 30 % of requested rates within 10 bpm
    "align": AlignConfig(steps=800, batch_size=16, lr_llm=2e-4),
})
_TEACHER = {
    "sizes": TEACHER_SIZES, "pool_size": 4096, "data": GROUNDING_DATA,
    "stage1": Stage1Config(encoder_steps=300, encoder_lr=5e-4, steps=1000, batch_size=8, lr=4e-4, ground_steps=300,
                           **GROUNDING),
    "vae": VaeTrainConfig(steps=500, batch_size=32, lr=5e-4),
    "unet": UnetTrainConfig(steps=2000, batch_size=64, lr=5e-4),
    "align": AlignConfig(steps=400, batch_size=16, lr_llm=1e-4),
}
RECIPE_PRESETS.add("small", _TEACHER)
RECIPE_PRESETS.add("teacher", _TEACHER)


def recipe_config(preset: str, seed: int = 0) -> RecipeConfig:
    """The :class:`RecipeConfig` of a named preset and seed."""
    overrides = RECIPE_PRESETS.get(preset)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return RecipeConfig(preset=preset, seed=seed, **overrides)
