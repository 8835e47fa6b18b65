"""Per-lead signal quality: flat, railed (saturated), lead-off, mains noise, missing samples.

Each check is a function in the ``QUALITY_CHECKS`` registry that looks at one lead and returns whether its flag
applies; ``assess_quality`` runs them all and says whether the record is usable (at least one lead free of the
disqualifying flags). The figures behind the flags come out too, so a flag can be checked.

* missing: more than ``missing_fraction`` of the samples are NaN (gaps in acquisition);
* lead_off: no finite sample at all, or flat or railed for most of the record (an open electrode);
* flat: the signal barely moves (peak-to-peak under ``flat_mv`` in most one-second windows);
* railed: runs of identical samples at the lead's extreme value (an amplifier at its rail) over ``rail_fraction``;
* mains_noise: power within +-1 Hz of 50 or 60 Hz over ``mains_ratio`` of the power in 1-45 Hz plus mains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal as sps

from ..registry import Registry

__all__ = ["QualityConfig", "LeadStats", "QUALITY_CHECKS", "DISQUALIFYING", "lead_stats", "assess_quality"]


@dataclass(frozen=True)
class QualityConfig:
    missing_fraction: float = 0.05
    flat_mv: float = 0.02
    flat_window_fraction: float = 0.8
    rail_fraction: float = 0.01
    rail_min_run: int = 5
    mains_ratio: float = 0.3
    lead_off_fraction: float = 0.8


@dataclass
class LeadStats:
    """The figures one lead's checks read."""

    n: int
    missing_fraction: float
    flat_window_fraction: float  # one-second windows with peak-to-peak under flat_mv
    rail_fraction: float
    mains_hz: float | None
    mains_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing_fraction": round(self.missing_fraction, 4),
            "flat_fraction": round(self.flat_window_fraction, 3),
            "rail_fraction": round(self.rail_fraction, 4),
            "mains_hz": self.mains_hz,
            "mains_ratio": round(self.mains_ratio, 3),
        }


QualityCheck = Callable[[LeadStats, QualityConfig], bool]
QUALITY_CHECKS: Registry[QualityCheck] = Registry("quality check")
DISQUALIFYING = frozenset({"lead_off", "flat", "railed"})


@QUALITY_CHECKS.register("missing")
def _missing(s: LeadStats, c: QualityConfig) -> bool:
    return s.missing_fraction > c.missing_fraction


@QUALITY_CHECKS.register("lead_off")
def _lead_off(s: LeadStats, c: QualityConfig) -> bool:
    return (s.missing_fraction >= 1.0 or s.flat_window_fraction >= c.lead_off_fraction
            or s.rail_fraction >= c.lead_off_fraction * 0.5)


@QUALITY_CHECKS.register("flat")
def _flat(s: LeadStats, c: QualityConfig) -> bool:
    return s.missing_fraction < 1.0 and s.flat_window_fraction >= c.flat_window_fraction


@QUALITY_CHECKS.register("railed")
def _railed(s: LeadStats, c: QualityConfig) -> bool:
    return s.rail_fraction > c.rail_fraction


@QUALITY_CHECKS.register("mains_noise")
def _mains(s: LeadStats, c: QualityConfig) -> bool:
    return s.mains_ratio > c.mains_ratio


def lead_stats(x: np.ndarray, fs: float, config: QualityConfig = QualityConfig(),
               mains: tuple[float | None, float] | None = None) -> LeadStats:
    """The figures of one lead (1-D, mV, NaN = missing); ``mains`` if already computed for it."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    finite = np.isfinite(x)
    missing = 1.0 - finite.mean() if n else 1.0
    if not finite.any():
        return LeadStats(n, 1.0, 1.0, 0.0, None, 0.0)
    # flat: peak-to-peak per one-second window (windows with any finite sample)
    w = max(1, int(round(fs)))
    count = max(1, n // w)
    blocks = x[: count * w].reshape(count, w) if n >= w else x[None, :]
    has = np.isfinite(blocks).any(axis=1)
    ptp = np.full(blocks.shape[0], np.nan)
    ptp[has] = np.nanmax(blocks[has], axis=1) - np.nanmin(blocks[has], axis=1)
    valid = np.isfinite(ptp)
    flat = float((ptp[valid] < config.flat_mv).mean()) if valid.any() else 1.0
    rail = _rail_fraction(x[finite], config.rail_min_run)
    mains_hz, mains_ratio = mains if mains is not None else _mains_ratios(x[None, :], fs)[0]
    return LeadStats(n, float(missing), flat, rail, mains_hz, mains_ratio)


def assess_quality(signal: np.ndarray, fs: float, leads: tuple[str, ...],
                   config: QualityConfig = QualityConfig()) -> dict[str, Any]:
    """``{"usable": bool, "leads": {name: {"flags": [...], figures...}}}`` for a (leads, samples) signal."""
    per_lead: dict[str, Any] = {}
    usable = False
    x = np.asarray(signal, dtype=np.float64)
    mains = _mains_ratios(x, fs)
    for name, row, lead_mains in zip(leads, x, mains, strict=True):
        stats = lead_stats(row, fs, config, lead_mains)
        flags = [flag for flag, check in QUALITY_CHECKS.items() if check(stats, config)]
        per_lead[name] = {"flags": flags, **stats.to_dict()}
        usable = usable or not (set(flags) & DISQUALIFYING)
    return {"usable": usable, "leads": per_lead}


def good_leads(quality: dict[str, Any], leads: tuple[str, ...]) -> list[int]:
    """Indices of the leads without a disqualifying flag."""
    return [i for i, name in enumerate(leads)
            if not set(quality["leads"][name]["flags"]) & DISQUALIFYING]


def _rail_fraction(x: np.ndarray, min_run: int) -> float:
    """Fraction of samples in runs (>= ``min_run``) of identical values at the lead's minimum or maximum."""
    if x.size < min_run:
        return 0.0
    total = 0
    for extreme in (x.max(), x.min()):
        at = x == extreme
        if at.sum() < min_run:
            continue
        edges = np.diff(np.concatenate([[0], at.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        runs = stops - starts
        total += int(runs[runs >= min_run].sum())
        if x.max() == x.min():
            break
    return total / x.size


def _mains_ratios(x: np.ndarray, fs: float) -> list[tuple[float | None, float]]:
    """Per row, the stronger of 50 and 60 Hz: (frequency, power within +-1 Hz / power in 1-45 Hz plus that
    band); (None, 0) where it cannot be told (too short, fs under 110 Hz, no finite sample)."""
    finite = np.isfinite(x)
    none: list[tuple[float | None, float]] = [(None, 0.0)] * x.shape[0]
    if x.shape[1] < int(fs) or fs < 110.0:
        return none
    counts = finite.sum(axis=1)
    means = np.divide(np.where(finite, x, 0.0).sum(axis=1), counts, out=np.zeros(x.shape[0]), where=counts > 0)
    y = np.where(finite, x - means[:, None], 0.0)
    f, p = sps.welch(y, fs=fs, nperseg=min(y.shape[1], int(2 * fs)), axis=-1)
    base = p[:, (f >= 1.0) & (f <= 45.0)].sum(axis=1)
    out = []
    for row in range(x.shape[0]):
        best: tuple[float | None, float] = (None, 0.0)
        for hz in (50.0, 60.0):
            if counts[row] == 0 or hz + 1.0 >= fs / 2.0:
                continue
            band = p[row, (f >= hz - 1.0) & (f <= hz + 1.0)].sum()
            total = base[row] + band
            ratio = float(band / total) if total > 0 else 0.0
            if ratio > best[1]:
                best = (hz, ratio)
        out.append(best)
    return out
