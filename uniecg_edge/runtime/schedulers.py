"""Diffusion samplers in numpy for the on-device loop: DDPM, DDIM and DPM-Solver++ (2M), no torch.

Ports of the diffusers schedulers that :mod:`uniecg_edge.model.schedulers` builds (same defaults: DDPM and DDIM
with ``leading`` timestep spacing and ``set_alpha_to_one``, DPM-Solver++ second order with ``linspace`` spacing,
``lower_order_final`` and a final sigma of zero). The config has the same fields as
``uniecg_edge.model.schedulers.SchedulerConfig`` and reads the bundle's ``scheduler.json``. Each sampler keeps
its own step state: make a fresh one (``make_sampler``) per sample. The scheduler runs on the host (edge-facts §9).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ..registry import Registry

FloatArray = npt.NDArray[np.float32]

SCHEDULER_FILE = "scheduler.json"
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
CLIP_RANGE = 1.0  # diffusers' clip_sample_range default


def _linear_betas(cfg: SamplerConfig) -> np.ndarray:
    return np.linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps, dtype=np.float32)


def _scaled_linear_betas(cfg: SamplerConfig) -> np.ndarray:
    return np.linspace(cfg.beta_start ** 0.5, cfg.beta_end ** 0.5, cfg.num_train_timesteps, dtype=np.float32) ** 2


def _cosine_betas(cfg: SamplerConfig) -> np.ndarray:
    """``squaredcos_cap_v2`` (Glide): betas from the cosine alpha-bar, capped at 0.999."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    n = cfg.num_train_timesteps
    return np.asarray([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)], np.float32)


BETA_SCHEDULES: Registry[Callable[[SamplerConfig], np.ndarray]] = Registry("beta schedule")
BETA_SCHEDULES.add("linear", _linear_betas)
BETA_SCHEDULES.add("scaled_linear", _scaled_linear_betas)
BETA_SCHEDULES.add("squaredcos_cap_v2", _cosine_betas)


@dataclass(frozen=True)
class SamplerConfig:
    """The fields of ``uniecg_edge.model.schedulers.SchedulerConfig`` (a test keeps the two in step)."""

    kind: str = "ddpm"
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    num_inference_steps: int = 1000

    def __post_init__(self) -> None:
        SAMPLERS.get(self.kind)
        BETA_SCHEDULES.get(self.beta_schedule)
        if self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"SamplerConfig: prediction_type must be one of {', '.join(PREDICTION_TYPES)}, "
                              f"got {self.prediction_type!r}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ConfigError(f"SamplerConfig: num_inference_steps must be in 1..{self.num_train_timesteps}, "
                              f"got {self.num_inference_steps}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ConfigError(f"SamplerConfig: need 0 < beta_start < beta_end < 1, got {self.beta_start}, "
                              f"{self.beta_end}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"SamplerConfig: unknown keys {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"SamplerConfig: {exc}") from None


def load_sampler_config(path: str | os.PathLike[str]) -> SamplerConfig:
    """Read a ``scheduler.json`` (the file, or the folder holding it)."""
    src = Path(path)
    if src.is_dir():
        src = src / SCHEDULER_FILE
    try:
        data = json.loads(src.read_text())
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read the scheduler config ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{src}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: expected a JSON object")
    try:
        return SamplerConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{src}: {exc}") from None


class Sampler:
    """Common part: the noise schedule, timesteps and the x0 / epsilon conversions."""

    init_noise_sigma = 1.0

    def __init__(self, cfg: SamplerConfig) -> None:
        self.cfg = cfg
        betas = BETA_SCHEDULES.get(cfg.beta_schedule)(cfg)
        self.alphas_cumprod = np.cumprod(1.0 - betas, dtype=np.float32)
        self.timesteps = self._timesteps()

    def _timesteps(self) -> np.ndarray:
        """``leading`` spacing (DDPM and DDIM defaults)."""
        ratio = self.cfg.num_train_timesteps // self.cfg.num_inference_steps
        return (np.arange(self.cfg.num_inference_steps) * ratio)[::-1].astype(np.int64)

    def scale_model_input(self, sample: FloatArray, timestep: int) -> FloatArray:
        return sample

    def _x0_and_eps(self, model_output: np.ndarray, sample: np.ndarray, alpha_prod: float
                    ) -> tuple[np.ndarray, np.ndarray]:
        a, b = math.sqrt(alpha_prod), math.sqrt(1.0 - alpha_prod)
        kind = self.cfg.prediction_type
        if kind == "epsilon":
            return (sample - b * model_output) / a, model_output
        if kind == "sample":
            return model_output, (sample - a * model_output) / b
        return a * sample - b * model_output, a * model_output + b * sample  # v_prediction

    def _alpha_prod(self, timestep: int, final: float = 1.0) -> float:
        return float(self.alphas_cumprod[timestep]) if timestep >= 0 else final

    def step(self, model_output: FloatArray, timestep: int, sample: FloatArray, *,
             rng: np.random.Generator | None = None, noise: FloatArray | None = None) -> FloatArray:
        raise NotImplementedError


SAMPLERS: Registry[type[Sampler]] = Registry("scheduler kind")


@SAMPLERS.register("ddpm")
class DdpmSampler(Sampler):
    """Ancestral DDPM with the ``fixed_small`` variance; the noise comes from ``rng`` or ``noise``."""

    def _previous(self, timestep: int) -> int:
        index = int(np.flatnonzero(self.timesteps == timestep)[0])
        return int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1

    def step(self, model_output: FloatArray, timestep: int, sample: FloatArray, *,
             rng: np.random.Generator | None = None, noise: FloatArray | None = None) -> FloatArray:
        t = int(timestep)
        prev_t = self._previous(t)
        alpha_prod = self._alpha_prod(t)
        alpha_prev = self._alpha_prod(prev_t)
        current_alpha = alpha_prod / alpha_prev
        current_beta = 1.0 - current_alpha
        x0, _ = self._x0_and_eps(model_output, sample, alpha_prod)
        if self.cfg.clip_sample:
            x0 = np.clip(x0, -CLIP_RANGE, CLIP_RANGE)
        x0_coeff = math.sqrt(alpha_prev) * current_beta / (1.0 - alpha_prod)
        xt_coeff = math.sqrt(current_alpha) * (1.0 - alpha_prev) / (1.0 - alpha_prod)
        prev = x0_coeff * x0 + xt_coeff * sample
        if t > 0:
            if noise is None:
                if rng is None:
                    raise ValueError("DDPM needs rng= or noise= for its variance noise")
                noise = rng.standard_normal(sample.shape, dtype=np.float32)
            variance = max((1.0 - alpha_prev) / (1.0 - alpha_prod) * current_beta, 1e-20)
            prev = prev + math.sqrt(variance) * noise
        return np.asarray(prev, np.float32)


@SAMPLERS.register("ddim")
class DdimSampler(Sampler):
    """Deterministic DDIM (eta 0), ``set_alpha_to_one``."""

    def step(self, model_output: FloatArray, timestep: int, sample: FloatArray, *,
             rng: np.random.Generator | None = None, noise: FloatArray | None = None) -> FloatArray:
        t = int(timestep)
        prev_t = t - self.cfg.num_train_timesteps // self.cfg.num_inference_steps
        alpha_prod = self._alpha_prod(t)
        alpha_prev = self._alpha_prod(prev_t)
        x0, eps = self._x0_and_eps(model_output, sample, alpha_prod)
        if self.cfg.clip_sample:
            x0 = np.clip(x0, -CLIP_RANGE, CLIP_RANGE)
        prev = math.sqrt(alpha_prev) * x0 + math.sqrt(1.0 - alpha_prev) * eps
        return np.asarray(prev, np.float32)


@SAMPLERS.register("ddim-trailing")
class DdimTrailingSampler(DdimSampler):
    """DDIM on the ``trailing`` grid t_k = round(T - k·T/N) - 1: the first step starts at T - 1 from pure noise and
    the last lands on alpha = 1. The schedule step-distilled UNets are trained for (``training.step_distill``)."""

    def _timesteps(self) -> np.ndarray:
        total, steps = self.cfg.num_train_timesteps, self.cfg.num_inference_steps
        if total % steps:
            raise ConfigError(f"ddim-trailing needs num_inference_steps dividing {total}, got {steps}")
        return (np.round(np.arange(total, 0, -total / steps)) - 1).astype(np.int64)


@SAMPLERS.register("dpmsolver++")
class DpmSolverPlusPlusSampler(Sampler):
    """DPM-Solver++ (2M, midpoint), data prediction; first order at the start and at the last step."""

    def __init__(self, cfg: SamplerConfig) -> None:
        super().__init__(cfg)
        all_sigmas = np.sqrt((1.0 - self.alphas_cumprod) / self.alphas_cumprod)
        sigmas = np.interp(self.timesteps, np.arange(len(all_sigmas)), all_sigmas)
        self.sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)  # final sigma: zero
        self._index = 0
        self._previous_x0: np.ndarray | None = None

    def _timesteps(self) -> np.ndarray:
        """``linspace`` spacing (the DPM-Solver default)."""
        n, steps = self.cfg.num_train_timesteps, self.cfg.num_inference_steps
        return np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].astype(np.int64)

    def _alpha_sigma(self, index: int) -> tuple[float, float, float]:
        """alpha_t, sigma_t and lambda_t = log(alpha_t / sigma_t) at ``sigmas[index]`` (lambda +inf at sigma 0)."""
        sigma = float(self.sigmas[index])
        alpha_t = 1.0 / math.sqrt(sigma * sigma + 1.0)
        sigma_t = sigma * alpha_t
        lam = math.log(alpha_t) - math.log(sigma_t) if sigma_t > 0 else math.inf
        return alpha_t, sigma_t, lam

    def step(self, model_output: FloatArray, timestep: int, sample: FloatArray, *,
             rng: np.random.Generator | None = None, noise: FloatArray | None = None) -> FloatArray:
        i = self._index
        if i >= len(self.timesteps):
            raise ValueError(f"DPM-Solver++ has only {len(self.timesteps)} steps")
        if int(timestep) != int(self.timesteps[i]):
            raise ValueError(f"DPM-Solver++ step {i} expects timestep {int(self.timesteps[i])}, got {timestep}")
        alpha_s0, sigma_s0, lambda_s0 = self._alpha_sigma(i)
        alpha_t, sigma_t, lambda_t = self._alpha_sigma(i + 1)
        x0: np.ndarray
        if self.cfg.prediction_type == "epsilon":
            x0 = (sample - sigma_s0 * model_output) / alpha_s0
        elif self.cfg.prediction_type == "sample":
            x0 = model_output
        else:
            x0 = alpha_s0 * sample - sigma_s0 * model_output
        last = i == len(self.timesteps) - 1
        h = lambda_t - lambda_s0
        phi = math.expm1(-h) if math.isfinite(h) else -1.0  # exp(-h) - 1
        ratio = sigma_t / sigma_s0
        if self._previous_x0 is None or last:
            prev = ratio * sample - alpha_t * phi * x0
        else:
            _, _, lambda_s1 = self._alpha_sigma(i - 1)
            r0 = (lambda_s0 - lambda_s1) / h
            d1 = (1.0 / r0) * (x0 - self._previous_x0)
            prev = ratio * sample - alpha_t * phi * x0 - 0.5 * alpha_t * phi * d1
        self._previous_x0 = x0
        self._index += 1
        return np.asarray(prev, np.float32)


def make_sampler(cfg: SamplerConfig) -> Sampler:
    """A fresh sampler (its own step state) for ``cfg``."""
    return SAMPLERS.get(cfg.kind)(cfg)


def initial_latent(shape: tuple[int, ...], rng: np.random.Generator, sampler: Sampler) -> FloatArray:
    """Gaussian noise scaled by the sampler's ``init_noise_sigma``."""
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(sampler.init_noise_sigma)).astype(np.float32)
