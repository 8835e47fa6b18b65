"""The beat clock: a phase that advances by 2π from one R peak to the next, given to the UNet as sin/cos harmonics.

Why: the DiffuSETS condition is one vector per sample, so every UNet block receives the same bias at every position
and nothing in the network says *where* beats go; the package's UNet trained that way kept the rhythm of its
initial noise (seed 0 gave ~64 bpm whatever rate was asked; 52 % of requests within 10 bpm). With the clock the
condition terms vary along the latent: ``sin(kφ), cos(kφ)`` for ``k = 1..H``, averaged down to each block's length.

* Training: φ comes from the example's true R peaks (:func:`phase_from_peaks`), piecewise linear between beats, so
  irregular rhythms keep their own beat times and the network learns "QRS where φ ≡ 0 (mod 2π)".
* Sampling (and the exported ``unet_cond`` graph): φ is the regular clock of the requested rate,
  ``2π (hr/60 · t - 1/2)`` (:func:`regular_phase`): a beat every 60/hr s, the first half a period in.

The clock is sampled on the generator grid (``CLOCK_POINTS`` = 1024 points over the window, 102.4 Hz for 10 s) and
box-averaged by 8·2^level to a block's length, so a harmonic too fast for a level fades there instead of aliasing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

CLOCK_POINTS = 1024  # the generator grid: 8 points per latent position at latent length 128


def clock_times(window_s: float, points: int = CLOCK_POINTS) -> np.ndarray:
    """Times (s) of the clock's points: ``i * window_s / points`` (the generator grid, first sample at 0)."""
    return np.arange(points, dtype=np.float64) * (window_s / points)


def regular_phase(hr: Tensor, window_s: float, points: int = CLOCK_POINTS) -> Tensor:
    """Phase (B, points) of a regular rhythm at ``hr`` bpm (any shape holding B values): beats at (k + 1/2)·60/hr."""
    t = torch.from_numpy(clock_times(window_s, points).astype(np.float32)).to(hr.device)
    beats_per_s = hr.reshape(-1, 1).to(torch.float32) / 60.0
    return 2.0 * math.pi * (beats_per_s * t - 0.5)


def phase_from_peaks(r_peaks_s: np.ndarray, window_s: float, points: int = CLOCK_POINTS) -> np.ndarray:
    """Phase (points,) that is 2πk at the k-th R peak and linear in between; outside the first and last peak it
    goes on at the mean RR interval. Needs at least two peaks (every training window has them)."""
    peaks = np.sort(np.asarray(r_peaks_s, dtype=np.float64))
    if peaks.size < 2:
        raise ValueError(f"the beat clock needs at least two R peaks, got {peaks.size}")
    rr = float(np.mean(np.diff(peaks)))
    n_before = int(math.ceil(peaks[0] / rr)) + 1
    n_after = int(math.ceil((window_s - peaks[-1]) / rr)) + 1
    before = peaks[0] - rr * np.arange(n_before, 0, -1)
    grid = np.concatenate([before, peaks, peaks[-1] + rr * np.arange(1, n_after + 1)])
    t = clock_times(window_s, points)
    k = np.clip(np.searchsorted(grid, t, side="right") - 1, 0, grid.size - 2)
    frac = (t - grid[k]) / (grid[k + 1] - grid[k])
    return (2.0 * math.pi * (k - n_before + frac)).astype(np.float32)


def clock_features(phase: Tensor, harmonics: int) -> Tensor:
    """(B, points) phase -> (B, points, 2H): sin(kφ) for k = 1..H, then cos(kφ)."""
    k = torch.arange(1, harmonics + 1, dtype=phase.dtype, device=phase.device)
    angles = phase.unsqueeze(-1) * k
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def pooled_features(features: Tensor, length: int) -> Tensor:
    """(B, points, F) -> (B, length, F) by box averages of ``points / length`` points."""
    factor = features.shape[1] // length
    if factor * length != features.shape[1]:
        raise ValueError(f"clock of {features.shape[1]} points does not divide into length {length}")
    if factor == 1:
        return features
    return F.avg_pool1d(features.transpose(1, 2), factor, factor).transpose(1, 2)
