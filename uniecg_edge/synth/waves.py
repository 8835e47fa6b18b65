"""Wave primitives of the cardiac dipole: a time profile with finite support times a 3-D vector in mV.

Heart-vector axes: x to the patient's left, y inferior (to the feet), z anterior. Profiles are pure functions
of absolute time, so a wave renders identically whichever block of samples it falls into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Gaussians are cut at this many standard deviations (relative amplitude e^-12.5 ~ 4e-6).
GAUSS_SUPPORT_SIGMAS = 5.0


@dataclass(frozen=True)
class GaussianWave:
    """An (optionally asymmetric) Gaussian bump: ``sigma_left_s`` before the peak, ``sigma_right_s`` after."""

    center_s: float
    sigma_left_s: float
    sigma_right_s: float
    vector: np.ndarray  # (3,) mV at the peak

    @property
    def start_s(self) -> float:
        return self.center_s - GAUSS_SUPPORT_SIGMAS * self.sigma_left_s

    @property
    def end_s(self) -> float:
        return self.center_s + GAUSS_SUPPORT_SIGMAS * self.sigma_right_s

    def profile(self, t: np.ndarray) -> np.ndarray:
        d = t - self.center_s
        if self.sigma_left_s == self.sigma_right_s:
            z = d / self.sigma_left_s
        else:
            z = d / np.where(d < 0.0, self.sigma_left_s, self.sigma_right_s)
        return np.exp(-0.5 * z * z)


@dataclass(frozen=True)
class PlateauWave:
    """A smooth plateau (ST-segment shift): raised-cosine rise, flat top, raised-cosine fall to zero."""

    rise_start_s: float
    rise_end_s: float
    fall_start_s: float
    fall_end_s: float
    vector: np.ndarray

    @property
    def start_s(self) -> float:
        return self.rise_start_s

    @property
    def end_s(self) -> float:
        return self.fall_end_s

    def profile(self, t: np.ndarray) -> np.ndarray:
        rise = np.clip((t - self.rise_start_s) / (self.rise_end_s - self.rise_start_s), 0.0, 1.0)
        fall = np.clip((t - self.fall_start_s) / (self.fall_end_s - self.fall_start_s), 0.0, 1.0)
        return 0.5 * (1.0 - np.cos(math.pi * rise)) * 0.5 * (1.0 + np.cos(math.pi * fall))


Wave = GaussianWave | PlateauWave


class Shape(Protocol):
    """Anything the buffer can render: a profile over finite support times a vector."""

    @property
    def start_s(self) -> float: ...

    @property
    def end_s(self) -> float: ...

    @property
    def vector(self) -> np.ndarray: ...

    def profile(self, t: np.ndarray) -> np.ndarray: ...


class WaveBuffer:
    """Waves waiting to be rendered, each with its first and last sample index at ``fs``."""

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self._items: list[tuple[int, int, Shape]] = []

    def add(self, wave: Shape) -> None:
        first = math.ceil(wave.start_s * self.fs)
        last = math.floor(wave.end_s * self.fs)
        if last >= first:
            self._items.append((first, last, wave))

    def __len__(self) -> int:
        return len(self._items)

    def render(self, out: np.ndarray, first_sample: int) -> None:
        """Add every wave overlapping samples ``first_sample .. first_sample + n`` into ``out`` (k, n)."""
        n = out.shape[1]
        stop = first_sample + n
        for first, last, wave in self._items:
            if first >= stop or last < first_sample:
                continue
            i0 = max(first, first_sample)
            i1 = min(last + 1, stop)
            t = np.arange(i0, i1, dtype=np.float64) / self.fs
            out[:, i0 - first_sample : i1 - first_sample] += np.outer(wave.vector, wave.profile(t))

    def drop_before(self, sample: int) -> None:
        """Forget waves that end before ``sample``."""
        self._items = [item for item in self._items if item[1] >= sample]


def unit(vector: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    return v / np.linalg.norm(v)


def rotate_frontal(vector: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotate the frontal (x, y) part of a heart vector by ``angle_rad`` (towards inferior when positive)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    x, y, z = vector
    return np.array([c * x - s * y, s * x + c * y, z])
