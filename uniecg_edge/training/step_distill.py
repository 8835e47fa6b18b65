"""Diffusion step distillation: progressive distillation (Salimans & Ho, 2022) of the ε-prediction UNet.

Method (the package's choice, over consistency distillation: exact deterministic targets, no extra
network, and the result stays an ordinary ε-UNet that the existing export and runtime sample with DDIM):

* Grids. An N-step sampler visits ``t_k = round(k * T / N) - 1`` for k = N .. 0 (T = 1000 training steps):
  it starts at ``T - 1`` from pure noise and its last step lands on ``t = -1`` (ᾱ = 1, the clean latent).
  The 2N grid holds every point of the N grid, so two teacher steps span one student step exactly.
  For N dividing T this is diffusers' DDIM with ``timestep_spacing="trailing"``: the scheduler kind
  ``ddim-trailing`` that the distilled model ships with (``SchedulerConfig(kind="ddim-trailing", N)``).
* Stages. The first teacher is the original UNet (the teacher's, or the student's own) sampled with deterministic
  DDIM on the ``start_steps`` grid (1024 by default, which visits all 1000 timesteps: the 1000-step teacher;
  repeated timesteps are no-op steps; the ``edge`` preset starts from 64, DDIM 64 of the 1000-step-trained UNet).
  Each stage copies its teacher into a student that learns to make in ONE DDIM step what the teacher makes in
  two; the student then teaches the next stage: 1024 -> 512 -> ... -> ``target_steps`` (8 or 4).
* Targets (data-free). Each iteration draws noise and condition vectors (the output of the generation head
  trained with that UNet: the teacher's, or the student's own for ``"diffusion": "own"``; plus sex, age and heart
  rate: the same heart-rate control the runtime uses) and runs the stage teacher along
  its 2N grid. The state at every student grid point, ``z_t``, and the state two teacher steps later, ``z_s``,
  make one training pair; ``pairs_per_trajectory`` of the N pairs are used. No VAE latents of real ECGs are needed.
* Loss. The x-space target is the x̃ for which one DDIM step from ``z_t`` lands on ``z_s``:
  ``x̃ = (z_s - (σ_s/σ_t) z_t) / (α_s - (σ_s/σ_t) α_t)``; the student's ``x̂ = (z_t - σ_t ε̂)/α_t``;
  loss ``max(SNR_t, 1) · mean|x̂ - x̃|²`` ("truncated SNR" weighting of the paper; ``epsilon`` weighting is
  the plain ε-space MSE). Samplers here never clip x̂ (``clip_sample=False`` in the shipped config).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..model.schedulers import SchedulerConfig, make_scheduler
from ..model.unet import ConditionalUNet1d
from ..registry import Registry

logger = logging.getLogger(__name__)

SHIPPED_KIND = "ddim-trailing"
LOSS_WEIGHTINGS: Registry[Callable[[Tensor], Tensor]] = Registry("step-distillation loss weighting")
LOSS_WEIGHTINGS.add("truncated_snr", lambda snr: torch.clamp(snr, min=1.0))  # x-space weight max(SNR, 1)
LOSS_WEIGHTINGS.add("epsilon", lambda snr: snr)  # x-space weight SNR == plain ε-space MSE


@dataclass(frozen=True)
class StepDistillConfig:
    """Progressive distillation from ``start_steps`` to ``target_steps`` by halving."""

    start_steps: int = 1024
    target_steps: int = 8
    iterations_per_stage: int = 2000
    batch_size: int = 16  # trajectories per iteration
    pairs_per_trajectory: int = 0  # 0: all N pairs of each trajectory
    lr: float = 5e-5
    weight_decay: float = 0.0
    weighting: str = "truncated_snr"
    seed: int = 0
    eval_samples: int = 8  # samples behind the reported RMS errors (stage ends and metrics.json)

    def __post_init__(self) -> None:
        LOSS_WEIGHTINGS.get(self.weighting)
        if self.target_steps < 1 or self.start_steps <= self.target_steps:
            raise ConfigError(f"step distillation needs start_steps > target_steps >= 1, "
                              f"got {self.start_steps} -> {self.target_steps}")
        ratio = self.start_steps // self.target_steps
        if self.start_steps % self.target_steps or ratio & (ratio - 1):
            raise ConfigError(f"start_steps ({self.start_steps}) must be target_steps ({self.target_steps}) "
                              "times a power of two")
        if min(self.iterations_per_stage, self.batch_size, self.eval_samples) < 1 or self.lr <= 0 \
                or self.pairs_per_trajectory < 0:
            raise ConfigError("iterations_per_stage, batch_size, eval_samples and lr must be positive, "
                              "pairs_per_trajectory >= 0")

    @property
    def stages(self) -> list[int]:
        """Student step counts, one per stage: start/2, start/4, ..., target."""
        out, n = [], self.start_steps
        while n > self.target_steps:
            n //= 2
            out.append(n)
        return out


# ---- grids and the deterministic DDIM step ---------------------------------------------------------------
def ddim_grid(num_steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """Timesteps an N-step sampler visits, noisiest first: ``round(k*T/N) - 1`` for k = N .. 0 (last is -1)."""
    if num_steps < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    return [int(math.floor(k * num_train_timesteps / num_steps + 0.5)) - 1 for k in range(num_steps, -1, -1)]


def alphas_with_clean(scheduler_cfg: SchedulerConfig) -> Tensor:
    """ᾱ for t = -1 .. T-1 (index t + 1), float64, with ᾱ(-1) = 1."""
    base = make_scheduler(SchedulerConfig(kind="ddim", num_train_timesteps=scheduler_cfg.num_train_timesteps,
                                          beta_start=scheduler_cfg.beta_start, beta_end=scheduler_cfg.beta_end,
                                          beta_schedule=scheduler_cfg.beta_schedule, num_inference_steps=1))
    return torch.cat([torch.ones(1, dtype=torch.float64), base.alphas_cumprod.to(torch.float64)])


def _alpha_sigma(alphas: Tensor, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    abar = alphas.to(like.device)[t + 1].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))
    return abar.sqrt(), (1.0 - abar).clamp(min=0.0).sqrt()


def ddim_step(eps: Tensor, z: Tensor, t: Tensor, s: Tensor, alphas: Tensor) -> Tensor:
    """Deterministic DDIM (η = 0, no clipping) from timestep ``t`` to ``s`` (per sample; -1 = clean)."""
    a_t, s_t = _alpha_sigma(alphas, t, z)
    a_s, s_s = _alpha_sigma(alphas, s, z)
    x0 = (z - s_t * eps) / a_t
    return a_s * x0 + s_s * eps


def expand_terms(terms: Sequence[Tensor], batch: int) -> tuple[Tensor, ...]:
    return tuple(term.expand(batch, *term.shape[1:]) if term.shape[0] == 1 else term for term in terms)


@torch.no_grad()
def sample_on_grid(unet: ConditionalUNet1d, terms: Sequence[Tensor], grid: Sequence[int], noise: Tensor,
                   alphas: Tensor, keep_every: int = 0) -> tuple[Tensor, list[Tensor]]:
    """DDIM along ``grid`` from ``noise``; returns the final latent and, if ``keep_every`` > 0, the states at
    grid indices 0, keep_every, 2*keep_every, ... (the first is the noise, the last the final latent)."""
    batch = noise.shape[0]
    terms = expand_terms(terms, batch)
    z, kept = noise, [noise] if keep_every else []
    for i, (t, s) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
        tt = torch.full((batch,), t, dtype=torch.long, device=noise.device)
        ss = torch.full((batch,), s, dtype=torch.long, device=noise.device)
        z = ddim_step(unet(z, tt.clamp(min=0), terms), z, tt, ss, alphas)
        if keep_every and (i + 1) % keep_every == 0:
            kept.append(z)
    return z, kept


def shipped_scheduler(teacher_cfg: SchedulerConfig, steps: int) -> SchedulerConfig:
    """The sampler a student distilled to ``steps`` steps runs with (same β schedule, trailing grid, no clip)."""
    return SchedulerConfig(kind=SHIPPED_KIND, num_train_timesteps=teacher_cfg.num_train_timesteps,
                           beta_start=teacher_cfg.beta_start, beta_end=teacher_cfg.beta_end,
                           beta_schedule=teacher_cfg.beta_schedule, prediction_type=teacher_cfg.prediction_type,
                           clip_sample=False, num_inference_steps=steps)


# ---- conditions ------------------------------------------------------------------------------------------
@dataclass
class ConditionPool:
    """Condition inputs to sample from: ``cond`` (M, 1, D) generation-head outputs and ``sex``, ``age``,
    ``hr`` (M, 1, 1) each, raw as the UNet takes them."""

    cond: Tensor
    sex: Tensor
    age: Tensor
    hr: Tensor

    def __len__(self) -> int:
        return int(self.cond.shape[0])

    def take(self, index: Tensor, device: torch.device | str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(x[index].to(device) for x in (self.cond, self.sex, self.age, self.hr))  # type: ignore[return-value]


# ---- one stage -------------------------------------------------------------------------------------------
class StageObjective(nn.Module):
    """The student UNet with the stage's loss as ``forward`` (so DDP synchronises it): teacher pairs -> loss."""

    alphas: Tensor

    def __init__(self, student: ConditionalUNet1d, alphas: Tensor, weighting: str) -> None:
        super().__init__()
        self.student = student
        self.register_buffer("alphas", alphas, persistent=False)
        self.weight_fn = LOSS_WEIGHTINGS.get(weighting)

    def forward(self, z_t: Tensor, z_s: Tensor, t: Tensor, s: Tensor, cond: Tensor, sex: Tensor, age: Tensor,
                hr: Tensor) -> Tensor:
        terms = self.student.condition_terms(cond, sex, age, hr)
        eps = self.student(z_t, t.clamp(min=0), terms)
        a_t, s_t = _alpha_sigma(self.alphas, t, z_t)
        a_s, s_s = _alpha_sigma(self.alphas, s, z_t)
        ratio = s_s / s_t
        x_target = (z_s - ratio * z_t) / (a_s - ratio * a_t)
        x_pred = (z_t - s_t * eps) / a_t
        snr = (a_t / s_t) ** 2
        per_sample = ((x_pred - x_target) ** 2).mean(dim=tuple(range(1, z_t.dim())))
        return (self.weight_fn(snr.flatten()) * per_sample).mean()


def stage_pairs(teacher: ConditionalUNet1d, pool: ConditionPool, student_steps: int, cfg: StepDistillConfig,
                alphas: Tensor, *, stage: int, step: int, process: int,
                device: torch.device | str) -> dict[str, Tensor]:
    """The training pairs of one iteration, a pure function of (seed, stage, step, process)."""
    from .accel import seeded_generator

    gen = seeded_generator(cfg.seed, 2, stage, step, process)
    unet_cfg = teacher.config
    batch = cfg.batch_size
    index = torch.randint(len(pool), (batch,), generator=gen)
    noise = torch.randn((batch, unet_cfg.n_channels, unet_cfg.latent_length), generator=gen).to(device)
    cond, sex, age, hr = pool.take(index, device)
    teacher_grid = ddim_grid(2 * student_steps, unet_cfg.num_train_timesteps)
    terms = teacher.condition_terms(cond, sex, age, hr)
    with torch.no_grad():
        _, states = sample_on_grid(teacher, terms, teacher_grid, noise, alphas, keep_every=2)
    grid = teacher_grid[::2]  # the student grid, N + 1 points
    z = torch.stack(states, dim=1)  # (B, N + 1, C, L)
    n = student_steps
    per = cfg.pairs_per_trajectory or n
    if per >= n:
        k = torch.arange(n).expand(batch, n)
    else:
        k = torch.argsort(torch.rand((batch, n), generator=gen), dim=1)[:, :per]
    k = k.to(device)
    rows = torch.arange(batch, device=device).unsqueeze(1).expand_as(k)
    grid_t = torch.tensor(grid, dtype=torch.long, device=device)
    flat = k.reshape(-1)
    return {
        "z_t": z[rows, k].reshape(-1, *z.shape[2:]), "z_s": z[rows, k + 1].reshape(-1, *z.shape[2:]),
        "t": grid_t[flat], "s": grid_t[flat + 1],
        "cond": cond.repeat_interleave(k.shape[1], 0), "sex": sex.repeat_interleave(k.shape[1], 0),
        "age": age.repeat_interleave(k.shape[1], 0), "hr": hr.repeat_interleave(k.shape[1], 0),
    }


def new_student(teacher: ConditionalUNet1d) -> ConditionalUNet1d:
    """A trainable copy of ``teacher``. Frozen: the sinusoid tables, and the parameters the fast path never
    touches (the published module tree keeps unused ``block.down`` convolutions and the cross-attention q/k and
    norm, which the exact condition-term shortcut skips), so that DDP finds every trainable parameter used."""
    student = copy.deepcopy(teacher).train()
    fresh = {name for name, p in type(teacher)(teacher.config).named_parameters() if p.requires_grad}
    for name, p in student.named_parameters():
        p.requires_grad_(name in fresh)
    cfg = student.config
    device = next(student.parameters()).device
    zeros = torch.zeros((1, 1, 1), device=device)
    terms = student.condition_terms(torch.zeros((1, 1, cfg.cond_dim), device=device), zeros, zeros, zeros)
    probe = torch.zeros((1, cfg.n_channels, cfg.latent_length), device=device)
    student(probe, torch.zeros(1, dtype=torch.long, device=device), terms).sum().backward()
    for p in student.parameters():
        if p.requires_grad and p.grad is None:
            p.requires_grad_(False)
        p.grad = None
    return student


def freeze(unet: ConditionalUNet1d) -> ConditionalUNet1d:
    unet.eval()
    for p in unet.parameters():
        p.requires_grad_(False)
    return unet


@torch.no_grad()
def sample_error(student: ConditionalUNet1d, reference: ConditionalUNet1d, pool: ConditionPool, student_steps: int,
                 reference_steps: int, alphas: Tensor, *, count: int = 8, seed: int = 1234,
                 device: torch.device | str = "cpu") -> float:
    """RMS difference between ``student`` sampled on the ``student_steps`` grid and ``reference`` on the
    ``reference_steps`` grid, from the same noise and conditions (``count`` samples)."""
    gen = torch.Generator().manual_seed(seed)
    cfg = reference.config
    noise = torch.randn((count, cfg.n_channels, cfg.latent_length), generator=gen).to(device)
    cond, sex, age, hr = pool.take(torch.randint(len(pool), (count,), generator=gen), device)
    T = cfg.num_train_timesteps
    ref, _ = sample_on_grid(reference, reference.condition_terms(cond, sex, age, hr), ddim_grid(reference_steps, T),
                            noise, alphas)
    out, _ = sample_on_grid(student, student.condition_terms(cond, sex, age, hr), ddim_grid(student_steps, T),
                            noise, alphas)
    return float(torch.sqrt(torch.mean((out - ref) ** 2)))


def describe(cfg: StepDistillConfig) -> dict[str, Any]:
    """What the distilled sampler costs beside the reference: UNet evaluations per sample."""
    return {"stages": cfg.stages, "teacher_unet_evaluations": 1000, "student_unet_evaluations": cfg.target_steps,
            "reduction": 1000 / cfg.target_steps}
