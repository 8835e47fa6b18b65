"""Continuous atrial activity: fibrillatory f waves (AF) and sawtooth F waves (flutter).

Both are heart-vector signals and pure functions of absolute time, so they render identically in any block.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from .projection import lead_vectors
from .waves import unit

_ATRIAL_DIRECTION = (0.1, 0.6, 0.8)  # f waves show best in V1 and the inferior leads
_FLUTTER_DIRECTION = (0.0, 1.0, -0.5)  # typical flutter: negative sawtooth in II, III, aVF; upright F in V1
_FLUTTER_HARMONICS = 8


class AtrialBackground(Protocol):
    def render(self, out: np.ndarray, first_sample: int, fs: float) -> None:
        """Add the atrial heart vector for samples ``first_sample ..`` into ``out`` (3, n)."""


class FibrillatoryWaves:
    """Three wandering, frequency- and amplitude-modulated 4-9 Hz oscillations with different directions."""

    def __init__(self, peak_to_peak_v1_mv: float, rng: np.random.Generator, components: int = 3) -> None:
        self.freq = rng.uniform(5.0, 7.5, components)
        self.fm_rate = rng.uniform(0.05, 0.2, components)
        self.fm_depth = rng.uniform(0.5, 1.2, components) / self.fm_rate  # ±0.5-1.2 Hz, in radians
        self.fm_phase = rng.uniform(0.0, 2.0 * math.pi, components)
        self.am_rate = rng.uniform(0.1, 0.4, components)
        self.am_phase = rng.uniform(0.0, 2.0 * math.pi, components)
        self.phase = rng.uniform(0.0, 2.0 * math.pi, components)
        base = unit(_ATRIAL_DIRECTION)
        self.vectors = np.stack([unit(base + 0.5 * rng.standard_normal(3)) for _ in range(components)], axis=1)
        # Calibrate: peak-to-peak (1st-99th percentile) in V1 over 20 s equals the requested value.
        t = np.arange(0.0, 20.0, 1.0 / 250.0)
        v1 = lead_vectors()["V1"] @ (self.vectors @ self._sources(t))
        spread = float(np.percentile(v1, 99) - np.percentile(v1, 1))
        self.vectors = self.vectors * (peak_to_peak_v1_mv / spread)

    def _sources(self, t: np.ndarray) -> np.ndarray:
        two_pi = 2.0 * math.pi
        tt = t[None, :]
        phase = (
            two_pi * self.freq[:, None] * tt
            + self.fm_depth[:, None] * np.sin(two_pi * self.fm_rate[:, None] * tt + self.fm_phase[:, None])
            + self.phase[:, None]
        )
        envelope = 0.6 + 0.4 * np.sin(two_pi * self.am_rate[:, None] * tt + self.am_phase[:, None])
        return envelope * np.sin(phase)

    def render(self, out: np.ndarray, first_sample: int, fs: float) -> None:
        t = np.arange(first_sample, first_sample + out.shape[1], dtype=np.float64) / fs
        out += self.vectors @ self._sources(t)


class FlutterWaves:
    """A smoothed sawtooth (slow descent, sharp rise in II) with period ``period_s`` starting at ``phase_s``."""

    def __init__(self, peak_to_peak_ii_mv: float, period_s: float, phase_s: float) -> None:
        self.period_s = period_s
        self.phase_s = phase_s
        h = np.arange(1, _FLUTTER_HARMONICS + 1, dtype=np.float64)
        self.weights = np.sinc(h / (_FLUTTER_HARMONICS + 1)) / h  # Lanczos-smoothed sawtooth series
        self.harmonics = h
        theta = np.linspace(0.0, 2.0 * math.pi, 1024, endpoint=False)
        wave = self.weights @ np.sin(np.outer(h, theta))
        direction = unit(_FLUTTER_DIRECTION)
        spread = float(wave.max() - wave.min()) * float(lead_vectors()["II"] @ direction)
        self.vector = direction * (peak_to_peak_ii_mv / spread)

    def render(self, out: np.ndarray, first_sample: int, fs: float) -> None:
        t = np.arange(first_sample, first_sample + out.shape[1], dtype=np.float64) / fs
        theta = 2.0 * math.pi * (t - self.phase_s) / self.period_s
        usable = self.harmonics / self.period_s < 0.45 * fs  # no harmonic above ~Nyquist
        wave = self.weights[usable] @ np.sin(np.outer(self.harmonics[usable], theta))
        out += np.outer(self.vector, wave)
