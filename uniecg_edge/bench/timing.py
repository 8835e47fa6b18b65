"""Wall-clock timing of one callable: warm-up runs, timed repeats, percentiles.

Percentiles use linear interpolation between the sorted samples (numpy's default "linear" method, the same as
Excel's PERCENTILE.INC): with n samples the p-th percentile sits at rank ``(n - 1) * p / 100``. With fewer than
about 100 samples p99 is an interpolation towards the slowest run, not a tail estimate; ``n`` is reported beside
every figure for that reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_WARMUP = 3
DEFAULT_REPEATS = 20


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples`` by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(float(s) for s in samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Timing:
    """Percentiles of repeated wall-clock measurements, in milliseconds."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    n: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> Timing:
        if not samples_ms:
            raise ValueError("no timing samples")
        values = [float(s) for s in samples_ms]
        return cls(p50_ms=percentile(values, 50), p95_ms=percentile(values, 95), p99_ms=percentile(values, 99),
                   mean_ms=sum(values) / len(values), min_ms=min(values), max_ms=max(values), n=len(values))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TimingConfig:
    """How each stage is timed: ``warmup`` untimed runs, then up to ``repeats`` timed ones; a stage stops early
    (with at least ``min_repeats`` samples) once its timed runs have taken ``budget_s`` seconds."""

    warmup: int = DEFAULT_WARMUP
    repeats: int = DEFAULT_REPEATS
    budget_s: float = 60.0
    min_repeats: int = 2

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if self.repeats < 1:
            raise ConfigError(f"repeats must be at least 1, got {self.repeats}")
        if self.warmup < 0:
            raise ConfigError(f"warm-up runs must be 0 or more, got {self.warmup}")
        if self.budget_s <= 0:
            raise ConfigError(f"the time budget of a stage must be positive, got {self.budget_s}")


def sample_ms(fn: Callable[[], object], config: TimingConfig = TimingConfig()) -> list[float]:
    """Run ``fn`` ``config.warmup`` times untimed, then time up to ``config.repeats`` runs (ms each)."""
    for _ in range(config.warmup):
        fn()
    samples: list[float] = []
    spent = 0.0
    for _ in range(config.repeats):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        samples.append(elapsed * 1e3)
        spent += elapsed
        if spent >= config.budget_s and len(samples) >= min(config.min_repeats, config.repeats):
            break
    return samples


def measure(fn: Callable[[], object], config: TimingConfig = TimingConfig()) -> Timing:
    """Percentiles of ``fn``'s wall-clock time after warm-up (see :class:`TimingConfig`)."""
    return Timing.from_samples(sample_ms(fn, config))


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The median wall-clock time of ``fn`` in ms over ``repeats`` runs after ``warmup`` runs."""
    return measure(fn, TimingConfig(warmup=warmup, repeats=repeats, budget_s=math.inf)).p50_ms
