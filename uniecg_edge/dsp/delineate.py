"""Delineation on median beats: QRS onset and offset, P onset, T end, per lead and global.

Beats are aligned on their R peaks and averaged by the median per lead (ectopic beats that do not look like the
dominant beat are left out first). On the median beats:

* QRS onset/offset (global): where the spatial velocity (sum over leads of |slope|) falls below a fraction of its
  QRS maximum, searching out from the R peak;
* T end (per lead): the tangent method, the steepest point of the descending limb after the T peak extended to
  the isoelectric level; the global T end is the median over leads whose T wave is clear;
* P onset (per lead): a hump in the window before the QRS that rises from and returns to baseline, found where
  its deviation falls under 15 % of its peak; the global P onset is the median over the leads that have one.

Everything that cannot be found is ``None``: no P waves in atrial fibrillation, no T end in a lead without a T
wave, no delineation with fewer than ``min_beats`` beats.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DelineationConfig", "Delineation", "MedianBeats", "median_beats", "delineate", "isoelectric_level"]


@dataclass(frozen=True)
class DelineationConfig:
    pre_ms: float = 450.0  # window before the R peak
    post_ms: float = 700.0  # window after the R peak
    min_beats: int = 3
    max_beats: int = 300  # beats averaged at most (evenly spread over a long record)
    likeness_min: float = 0.8  # correlation with the first median beat to be kept
    qrs_fraction: float = 0.12  # of the spatial velocity's QRS maximum, for onset and offset
    qrs_min_gap_ms: float = 8.0  # the velocity must stay under the threshold this long
    t_min_mv: float = 0.05  # a lead's T wave must reach this far from baseline
    t_lead_fraction: float = 0.5  # leads whose T is at least this fraction of the largest set the global T end
    t_tail_ms: float = 250.0  # the T end lies at most this far after the T peak
    p_min_mv: float = 0.03
    p_noise_ratio: float = 3.0  # P amplitude over the median beat's baseline noise
    p_edge_fraction: float = 0.35  # the hump must fall below this fraction of its peak on both sides


@dataclass
class MedianBeats:
    """Median beats (leads, window) at ``fs``; the R peak at index ``r_index``; which beats went in."""

    beats: np.ndarray
    fs: float
    r_index: int
    used: np.ndarray  # R peaks (sample indices) of the beats averaged
    rr_s: float  # median RR of the record, seconds


@dataclass
class Delineation:
    """Fiducials in ms relative to the R peak (negative before it); per-lead values keyed by lead name."""

    qrs_onset_ms: float | None = None
    qrs_offset_ms: float | None = None
    t_end_ms: float | None = None
    p_onset_ms: float | None = None
    t_end_by_lead: dict[str, float] = field(default_factory=dict)
    p_onset_by_lead: dict[str, float] = field(default_factory=dict)
    p_found_fraction: float = 0.0  # leads with a P wave / leads examined
    n_beats: int = 0


def median_beats(signal: np.ndarray, fs: float, r_peaks: np.ndarray,
                 config: DelineationConfig = DelineationConfig()) -> MedianBeats | None:
    """Median beats of the dominant morphology, or None when fewer than ``min_beats`` complete beats exist."""
    x = np.asarray(signal, dtype=np.float64)
    pre = int(round(config.pre_ms * fs / 1000.0))
    post = int(round(config.post_ms * fs / 1000.0))
    peaks = np.asarray(r_peaks, dtype=np.int64)
    rr = np.diff(peaks) / fs if peaks.size > 1 else np.zeros(0)
    peaks = peaks[(peaks - pre >= 0) & (peaks + post < x.shape[1])]
    if peaks.size < config.min_beats:
        return None
    if peaks.size > config.max_beats:
        peaks = peaks[np.linspace(0, peaks.size - 1, config.max_beats).round().astype(int)]
    offsets = np.arange(-pre, post + 1)
    stack = x[:, peaks[:, None] + offsets[None, :]]  # (leads, beats, window)
    first = _nanmedian(stack, axis=1)
    # keep the beats that look like the dominant one (around the QRS), if enough of them do
    qrs = slice(pre - int(0.08 * fs), pre + int(0.08 * fs) + 1)
    likeness = _correlation(stack[:, :, qrs], first[:, None, qrs])
    keep = likeness >= config.likeness_min
    if keep.sum() >= max(config.min_beats, peaks.size // 2):
        stack, peaks = stack[:, keep], peaks[keep]
    beats = _nanmedian(stack, axis=1)
    rr_s = float(np.median(rr)) if rr.size else float("nan")
    return MedianBeats(beats, float(fs), pre, peaks, rr_s)


def delineate(median: MedianBeats, leads: tuple[str, ...],
              config: DelineationConfig = DelineationConfig()) -> Delineation:
    """Fiducials of the median beats (see the module docstring)."""
    beats, fs, r = median.beats, median.fs, median.r_index
    out = Delineation(n_beats=int(median.used.size))
    finite = np.isfinite(beats).all(axis=1)
    if not finite.any():
        return out
    ms = 1000.0 / fs
    onset, offset = _qrs_bounds(beats[finite], fs, r, config)
    if onset is None or offset is None:
        return out
    out.qrs_onset_ms, out.qrs_offset_ms = (onset - r) * ms, (offset - r) * ms
    rr = median.rr_s if np.isfinite(median.rr_s) else 1.0
    t_stop = min(beats.shape[1] - 1, r + int(min(0.7 * rr, 0.65) * fs))
    bases = {int(i): isoelectric_level(beats[i], onset, fs) for i in np.flatnonzero(finite)}
    t_amp: dict[str, float] = {}
    for lead_i, base in bases.items():
        found = _t_end(beats[lead_i] - base, fs, offset, t_stop, config)
        if found is not None:
            out.t_end_by_lead[leads[lead_i]] = (found[0] - r) * ms
            t_amp[leads[lead_i]] = found[1]
    # the P wave lies after the previous beat's T wave: start the search there
    p_start = onset - int(min(0.3, 0.45 * rr) * fs)
    if out.t_end_by_lead:
        prev_t_end = r + int((float(np.median(list(out.t_end_by_lead.values()))) / 1000.0 - rr) * fs)
        p_start = max(p_start, prev_t_end + int(0.02 * fs))
    for lead_i, base in bases.items():
        p_on = _p_onset(beats[lead_i] - base, fs, max(0, p_start), onset - int(0.02 * fs), config)
        if p_on is not None:
            out.p_onset_by_lead[leads[lead_i]] = (p_on - r) * ms
    examined = len(bases)
    if out.t_end_by_lead:
        # the leads with the largest T waves (at least half the largest) decide, as QT is read where T is clear
        tallest = max(t_amp.values())
        chosen = [out.t_end_by_lead[k] for k, a in t_amp.items() if a >= config.t_lead_fraction * tallest]
        out.t_end_ms = float(np.median(chosen))
    out.p_found_fraction = len(out.p_onset_by_lead) / examined if examined else 0.0
    if out.p_onset_by_lead and out.p_found_fraction >= 1.0 / 3.0:
        out.p_onset_ms = float(np.median(list(out.p_onset_by_lead.values())))
    return out


# -- fiducial finders -------------------------------------------------------------------------------------------
def _qrs_bounds(beats: np.ndarray, fs: float, r: int, config: DelineationConfig) -> tuple[int | None, int | None]:
    """QRS onset and offset: where every lead's slope has fallen under a fraction of its own QRS maximum."""
    slope = np.abs(np.gradient(beats, axis=1))
    core = slice(r - int(0.05 * fs), r + int(0.05 * fs) + 1)
    peak = slope[:, core].max(axis=1)
    qrs_ptp = np.ptp(beats[:, core], axis=1)
    strong = qrs_ptp >= 0.25 * qrs_ptp.max()  # leads with a QRS worth following
    if not strong.any():
        return None, None
    velocity = (slope[strong] / peak[strong, None]).max(axis=0)
    velocity = np.convolve(velocity, np.ones(3) / 3.0, mode="same")
    before = velocity[max(0, r - int(0.4 * fs)): max(1, r - int(0.1 * fs))]
    floor = float(np.percentile(before, 20)) if before.size else 0.0
    threshold = floor + config.qrs_fraction * (1.0 - floor)
    gap = max(2, int(round(config.qrs_min_gap_ms * fs / 1000.0)))
    below = velocity < threshold
    onset = _run_start(below[::-1], len(velocity) - 1 - (r - int(0.01 * fs)), gap, int(0.16 * fs))
    offset = _run_start(below, r + int(0.01 * fs), gap, int(0.2 * fs))
    on = None if onset is None else len(velocity) - 1 - onset
    return on, offset


def _run_start(below: np.ndarray, start: int, gap: int, limit: int) -> int | None:
    """First index from ``start`` (within ``limit``) that begins ``gap`` consecutive True values."""
    stop = min(below.size - gap, start + limit)
    for i in range(max(0, start), stop):
        if below[i: i + gap].all():
            return i
    return None


def isoelectric_level(beat: np.ndarray, onset: int, fs: float) -> float:
    """Isoelectric level: the flattest 20 ms in the 100 ms before the QRS onset."""
    seg = beat[max(0, onset - int(0.1 * fs)): max(1, onset - int(0.005 * fs))]
    w = max(2, int(0.02 * fs))
    if seg.size <= w:
        return float(beat[max(0, onset - 1)])
    windows = np.lib.stride_tricks.sliding_window_view(seg, w)
    k = int(np.argmin(np.ptp(windows, axis=1)))
    return float(windows[k].mean())


def _t_end(y: np.ndarray, fs: float, qrs_off: int, stop: int, config: DelineationConfig
           ) -> tuple[int, float] | None:
    """(T end index, |T amplitude|) by the tangent method, or None when the lead has no clear T wave."""
    start = qrs_off + int(0.08 * fs)
    if stop - start < int(0.06 * fs):
        return None
    seg = y[start:stop]
    k = int(np.argmax(np.abs(seg)))
    amp = float(seg[k])
    if abs(amp) < config.t_min_mv or k >= seg.size - 2 or k == 0:
        return None
    peak = start + k
    slope = np.gradient(y[peak:stop + 1]) * np.sign(amp)  # returning limb: slope of opposite sign to T
    m = int(np.argmin(slope))
    if slope[m] >= 0:
        return None
    t_m = peak + m
    end = t_m - y[t_m] / (slope[m] * np.sign(amp))
    if not (peak < end <= min(stop + 0.05 * fs, peak + config.t_tail_ms * fs / 1000.0)):
        return None
    return int(round(end)), abs(amp)


def _p_onset(y: np.ndarray, fs: float, start: int, stop: int, config: DelineationConfig) -> int | None:
    if stop - start < int(0.06 * fs):
        return None
    seg = y[start:stop]
    k = int(np.argmax(np.abs(seg)))
    amp = float(seg[k])
    noise = float(np.std(np.diff(seg))) / np.sqrt(2.0)
    if abs(amp) < max(config.p_min_mv, config.p_noise_ratio * noise):
        return None
    rel = seg * np.sign(amp) / abs(amp)
    left = np.flatnonzero(rel[:k] < config.p_edge_fraction)
    right = np.flatnonzero(rel[k:] < config.p_edge_fraction)
    if left.size == 0 or right.size == 0:
        return None  # not a hump that starts and ends inside the window (a T wave's tail, a ramp)
    under = np.flatnonzero(rel[:k] < 0.15)
    onset = int(under[-1]) if under.size else int(left[-1])
    return start + onset


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correlation per beat between (leads, beats, w) and (leads, 1, w), all leads as one vector; NaN as 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN leads
        a = np.nan_to_num(a - np.nanmean(a, axis=2, keepdims=True))
        b = np.nan_to_num(b - np.nanmean(b, axis=2, keepdims=True))
    num = (a * b).sum(axis=(0, 2))
    den = np.sqrt((a * a).sum(axis=(0, 2)) * (b * b).sum(axis=(0, 2)))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
