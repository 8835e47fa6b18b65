"""Diffusion samplers for the UNet: a JSON-saved config, a registry of diffusers schedulers, the sampling loop.

``ddpm`` with 1000 steps is DiffuSETS' own sampler (the reference). ``ddim`` and ``dpmsolver++`` take fewer
steps; DiffuSETS never validated them, so their output quality must be checked before use.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import Registry
from .pretrained import config_from_dict, config_to_dict

if TYPE_CHECKING:
    from .unet import ConditionalUNet1d

logger = logging.getLogger(__name__)

SCHEDULER_CONFIG_NAME = "scheduler.json"

SCHEDULERS: Registry[Callable[[SchedulerConfig], Any]] = Registry("scheduler kind")


@dataclass(frozen=True)
class SchedulerConfig:
    """Sampler settings; the defaults are DiffuSETS' ``DDPMScheduler(1000, 0.00085, 0.012)`` run for 1000 steps."""

    kind: str = "ddpm"
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    num_inference_steps: int = 1000

    def __post_init__(self) -> None:
        SCHEDULERS.get(self.kind)  # unknown kinds raise a ConfigError listing the known ones
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ConfigError(
                f"SchedulerConfig: num_inference_steps must be in 1..{self.num_train_timesteps}, "
                f"got {self.num_inference_steps}"
            )
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ConfigError(
                f"SchedulerConfig: need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )


def _common_kwargs(cfg: SchedulerConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_start": cfg.beta_start,
        "beta_end": cfg.beta_end,
        "beta_schedule": cfg.beta_schedule,
        "prediction_type": cfg.prediction_type,
    }


@SCHEDULERS.register("ddpm")
def _ddpm(cfg: SchedulerConfig) -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(**_common_kwargs(cfg), clip_sample=cfg.clip_sample)


@SCHEDULERS.register("ddim")
def _ddim(cfg: SchedulerConfig) -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**_common_kwargs(cfg), clip_sample=cfg.clip_sample)


@SCHEDULERS.register("ddim-trailing")
def _ddim_trailing(cfg: SchedulerConfig) -> Any:
    # DDIM on the grid t_k = k*T/N - 1 (first step at T-1 from pure noise, last step lands on alpha = 1): the
    # schedule that step-distilled UNets are trained for (uniecg_edge.training.step_distill). Needs N | T.
    from diffusers import DDIMScheduler

    if cfg.num_train_timesteps % cfg.num_inference_steps:
        raise ConfigError(f"ddim-trailing needs num_inference_steps dividing {cfg.num_train_timesteps}, "
                          f"got {cfg.num_inference_steps}")
    return DDIMScheduler(**_common_kwargs(cfg), clip_sample=cfg.clip_sample, timestep_spacing="trailing")


@SCHEDULERS.register("dpmsolver++")
def _dpmsolver_pp(cfg: SchedulerConfig) -> Any:
    from diffusers import DPMSolverMultistepScheduler

    # DPM-Solver has no x0 clipping (clip_sample does not apply); second order, deterministic
    return DPMSolverMultistepScheduler(**_common_kwargs(cfg), algorithm_type="dpmsolver++", solver_order=2)


def make_scheduler(cfg: SchedulerConfig) -> Any:
    """The diffusers scheduler for ``cfg`` with its timesteps already set to ``cfg.num_inference_steps``."""
    scheduler = SCHEDULERS.get(cfg.kind)(cfg)
    scheduler.set_timesteps(cfg.num_inference_steps)
    return scheduler


def unet_evaluations(cfg: SchedulerConfig) -> int:
    """How many UNet calls :func:`sample_latents` makes with ``cfg`` (one per scheduler timestep)."""
    return len(make_scheduler(cfg).timesteps)


def save_scheduler_config(cfg: SchedulerConfig, path: str | os.PathLike[str]) -> Path:
    """Write the config as JSON to ``path`` if it ends in ``.json``, else to ``path/scheduler.json``.

    Parent folders are created; returns the file written.
    """
    path = Path(path)
    if path.suffix != ".json":
        path = path / SCHEDULER_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
    return path


def load_scheduler_config(path: str | os.PathLike[str]) -> SchedulerConfig:
    """Read a ``scheduler.json`` file, or the one inside a directory."""
    src = Path(path)
    if src.is_dir():
        src = src / SCHEDULER_CONFIG_NAME
    if not src.is_file():
        raise ConfigError(f"{src}: scheduler config not found")
    try:
        data = json.loads(src.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{src}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: expected a JSON object")
    try:
        return config_from_dict(SchedulerConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{src}: {exc}") from None


def _batched_terms(terms: Sequence[Tensor], batch: int, device: torch.device) -> tuple[Tensor, ...]:
    out = []
    for i, term in enumerate(terms):
        if term.shape[0] not in (1, batch):
            raise ValueError(f"condition term {i} has batch {term.shape[0]}, expected 1 or {batch}")
        out.append(term.to(device=device, dtype=torch.float32).expand(batch, *term.shape[1:]))
    return tuple(out)


@torch.no_grad()
def sample_latents(
    unet: ConditionalUNet1d,
    terms: Sequence[Tensor],
    scheduler_cfg: SchedulerConfig,
    *,
    batch: int = 1,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Run the sampler from Gaussian noise to a latent (batch, C, L); the same seed gives the same latent.

    ``terms`` come from :meth:`ConditionalUNet1d.condition_terms` with batch 1 (shared) or ``batch``.
    The number of UNet calls is :func:`unet_evaluations` (``scheduler_cfg``).
    """
    device = torch.device(device)
    scheduler = make_scheduler(scheduler_cfg)
    generator = torch.Generator(device=device).manual_seed(seed)
    cfg = unet.config
    batched = _batched_terms(terms, batch, device)
    sample = torch.randn(
        (batch, cfg.n_channels, cfg.latent_length), generator=generator, device=device, dtype=torch.float32
    )
    sample = sample * scheduler.init_noise_sigma
    logger.debug("sampling with %s, %d steps", scheduler_cfg.kind, len(scheduler.timesteps))
    for timestep in scheduler.timesteps:
        t = torch.full((batch,), int(timestep), dtype=torch.long, device=device)
        eps = unet(scheduler.scale_model_input(sample, timestep), t, batched)
        sample = scheduler.step(eps, timestep, sample, generator=generator).prev_sample
    return sample
