"""Augmentation of synthetic training ECGs: recording noise, amplitude, lead gains and time shifts.

Noise is drawn as a ``NoiseConfig`` and rendered by the simulator at the electrodes (baseline wander, mains,
muscle, electrode motion), so the limb-lead relations stay exact. The gain jitter scales leads I and II and
rebuilds III, aVR, aVL and aVF from them (Einthoven and Goldberger still hold), and scales each chest lead on
its own. Time shifts come from cropping a longer simulated record at a random offset (see :mod:`.dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..leads import STANDARD_LEADS, derive_limb_leads
from ..synth import NoiseConfig

_RANGES = ("amplitude_range", "tremor_hz_range", "p_scale_range", "p_duration_range_ms", "p_axis_shift_range_deg",
           "t_scale_range", "boundary_rate_range_bpm")
SINUS_RATE_SCENARIOS = ("sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia")  # named by their rate alone
# AugmentConfig range -> the SynthConfig field it draws (the simulator checks the values' own bounds)
MORPHOLOGY_RANGES = {"p_scale_range": "p_scale", "p_duration_range_ms": "p_duration_ms",
                     "p_axis_shift_range_deg": "p_axis_shift_deg", "t_scale_range": "t_scale"}


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of every augmentation; ``AugmentConfig.none()`` switches them all off."""

    amplitude_range: tuple[float, float] = (0.8, 1.25)  # one factor for the whole record
    lead_gain_sd: float = 0.05  # per-lead gain jitter (I, II and each chest lead)
    max_shift_s: float = 0.4  # the 10 s window starts this much into the simulated record, at most
    clean_fraction: float = 0.2  # records with no noise at all
    baseline_mv: float = 0.35  # upper bounds of the noise amplitudes (see NoiseConfig)
    mains_mv: float = 0.06
    emg_mv: float = 0.04
    motion_mv: float = 0.3
    tremor_fraction: float = 0.0  # records given a limb tremor (drawn apart: 0 leaves every other draw unchanged)
    tremor_mv: float = 0.1
    tremor_hz_range: tuple[float, float] = (4.0, 10.0)
    morphology_fraction: float = 0.0  # records whose P and T waves are reshaped (drawn apart, like the tremor)
    p_scale_range: tuple[float, float] = (0.3, 2.0)
    p_duration_range_ms: tuple[float, float] = (80.0, 130.0)
    p_axis_shift_range_deg: tuple[float, float] = (-40.0, 40.0)
    t_scale_range: tuple[float, float] = (0.2, 1.5)
    boundary_rate_fraction: float = 0.0  # sinus records redrawn at a rate around 60 and 100 bpm (drawn apart)
    boundary_rate_range_bpm: tuple[float, float] = (52.0, 110.0)

    def __post_init__(self) -> None:
        for name in _RANGES:
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        low, high = self.amplitude_range
        if not 0 < low <= high:
            raise ConfigError(f"AugmentConfig: amplitude_range must be 0 < low <= high, got {self.amplitude_range}")
        for name in ("lead_gain_sd", "max_shift_s", "baseline_mv", "mains_mv", "emg_mv", "motion_mv", "tremor_mv"):
            if getattr(self, name) < 0:
                raise ConfigError(f"AugmentConfig: {name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("clean_fraction", "tremor_fraction", "morphology_fraction", "boundary_rate_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"AugmentConfig: {name} must be in 0..1, got {getattr(self, name)!r}")
        low, high = self.tremor_hz_range
        if not 3.0 <= low <= high <= 12.0:
            raise ConfigError("AugmentConfig: tremor_hz_range must be 3 <= low <= high <= 12, "
                              f"got {self.tremor_hz_range}")
        for name in _RANGES:
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"AugmentConfig: {name} must be (low, high) with low <= high, got {(low, high)}")

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(amplitude_range=(1.0, 1.0), lead_gain_sd=0.0, max_shift_s=0.0, clean_fraction=1.0)


def draw_noise(rng: np.random.Generator, config: AugmentConfig) -> NoiseConfig:
    """A random mix of the four noise sources (each present with its own probability), or a clean record."""
    if float(rng.random()) < config.clean_fraction:
        return NoiseConfig()

    def level(upper: float, probability: float) -> float:
        present = float(rng.random()) < probability
        value = float(rng.uniform(0.0, upper))
        return value if present else 0.0

    return NoiseConfig(
        baseline_mv=level(config.baseline_mv, 0.7),
        mains_mv=level(config.mains_mv, 0.35),
        mains_hz=50.0 if float(rng.random()) < 0.5 else 60.0,
        emg_mv=level(config.emg_mv, 0.5),
        motion_mv=level(config.motion_mv, 0.25),
    )


def add_tremor(noise: NoiseConfig, rng: np.random.Generator, config: AugmentConfig) -> NoiseConfig:
    """``noise`` with a limb tremor for a ``tremor_fraction`` of records. ``rng`` is a stream of its own, so the
    record is otherwise the one drawn without tremor (a tremor looks like fibrillatory waves: with it, a sinus
    record teaches the rhythm from RR regularity and P waves instead of from a wavy baseline)."""
    if config.tremor_fraction <= 0 or float(rng.random()) >= config.tremor_fraction:
        return noise
    return replace(noise, tremor_mv=float(rng.uniform(0.3, 1.0)) * config.tremor_mv,
                   tremor_hz=float(rng.uniform(*config.tremor_hz_range)))


def draw_morphology(rng: np.random.Generator, config: AugmentConfig) -> dict[str, Any]:
    """``SynthConfig`` overrides reshaping the P and T waves for a ``morphology_fraction`` of records, else none.
    Real P waves differ in size, width and axis and T waves in size from the simulator's single shape. The presets
    draw small P waves (``p_scale_range`` 0-0.4) for 60 % of the grounding phase's ECGs: with the P wave near
    invisible, sinus rhythm and atrial fibrillation differ in RR regularity, which the evidence line states.
    ``rng`` is a stream of its own, so the record is otherwise the one drawn without it."""
    if config.morphology_fraction <= 0 or float(rng.random()) >= config.morphology_fraction:
        return {}
    return {field: float(rng.uniform(*getattr(config, name))) for name, field in MORPHOLOGY_RANGES.items()}


def draw_boundary_rate(scenario: str, rng: np.random.Generator, config: AugmentConfig) -> dict[str, Any]:
    """``{"hr_bpm": ...}`` drawn from ``boundary_rate_range_bpm`` for a ``boundary_rate_fraction`` of the sinus
    records (scenario ``scenario``), else none. The sinus scenarios leave gaps around the 60 and 100 bpm limits of
    bradycardia and tachycardia (56-63, 97-105 bpm); these records fill them, and their label follows the window's
    rate. ``rng`` is a stream of its own, so the record is otherwise the one drawn without it."""
    if (config.boundary_rate_fraction <= 0 or scenario not in SINUS_RATE_SCENARIOS
            or float(rng.random()) >= config.boundary_rate_fraction):
        return {}
    return {"hr_bpm": float(rng.uniform(*config.boundary_rate_range_bpm))}


def partial_view(ecg: np.ndarray, rng: np.random.Generator, seconds: tuple[float, float],
                 fs: float = 500.0) -> np.ndarray:
    """``ecg`` (12, n) with everything outside one random stretch of ``seconds`` (low, high) set to zero. Used with
    an evidence line measured on the whole window, the beats the model cannot see are known only from the line.
    Meant to make the model take the rhythm from the line's RR regularity and P waves; measured (README): near-blank
    views on 30 % of the grounded prompts left the rhythm words on real records where they were (48 %)."""
    n = ecg.shape[1]
    keep = min(n, int(round(float(rng.uniform(*seconds)) * fs)))
    start = int(rng.integers(0, n - keep + 1))
    out = np.zeros_like(ecg)
    out[:, start:start + keep] = ecg[:, start:start + keep]
    return out


def jitter_gains(signal: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Overall amplitude factor and per-lead gains on a (12, n) standard-order record; limb relations kept."""
    low, high = config.amplitude_range
    scale = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    gains = 1.0 + config.lead_gain_sd * np.clip(rng.standard_normal(8), -3.0, 3.0)  # I, II, V1..V6
    out = np.empty_like(signal)
    lead_i = signal[0] * (scale * gains[0])
    lead_ii = signal[1] * (scale * gains[1])
    out[0], out[1] = lead_i, lead_ii
    for name, values in derive_limb_leads(lead_i, lead_ii).items():
        out[STANDARD_LEADS.index(name)] = values
    out[6:] = signal[6:] * (scale * gains[2:, None])
    return out.astype(np.float32)
