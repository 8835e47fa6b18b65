"""Percentiles, the timing loop's warm-up / repeat / budget rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uniecg_edge.bench.timing import Timing, TimingConfig, median_ms, percentile, sample_ms
from uniecg_edge.errors import ConfigError


def test_percentile_interpolates_between_closest_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]  # sorted: 1 2 3 4; rank = 3 * q / 100
    assert percentile(samples, 50) == pytest.approx(2.5)
    assert percentile(samples, 95) == pytest.approx(3.85)
    assert percentile(samples, 99) == pytest.approx(3.97)
    assert percentile(samples, 0) == 1.0 and percentile(samples, 100) == 4.0
    assert percentile([7.5], 99) == 7.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=60), st.floats(0, 100))
def test_percentile_matches_numpy_linear(samples: list[float], q: float) -> None:
    assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)), rel=1e-9, abs=1e-9)


def test_percentile_refuses_no_samples_and_bad_q() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_timing_from_samples_orders_its_figures() -> None:
    t = Timing.from_samples([5.0, 1.0, 2.0, 3.0, 100.0])
    assert t.n == 5 and t.min_ms == 1.0 and t.max_ms == 100.0
    assert t.p50_ms == 3.0 and t.p50_ms <= t.p95_ms <= t.p99_ms <= t.max_ms
    assert t.mean_ms == pytest.approx(22.2)


def test_sample_ms_runs_warmup_untimed_then_repeats() -> None:
    calls = []
    samples = sample_ms(lambda: calls.append(1), TimingConfig(warmup=3, repeats=7))
    assert len(calls) == 10 and len(samples) == 7 and all(s >= 0 for s in samples)


def test_budget_stops_a_slow_stage_after_the_minimum_runs() -> None:
    import time

    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.02)

    samples = sample_ms(slow, TimingConfig(warmup=0, repeats=50, budget_s=0.01, min_repeats=2))
    assert len(samples) == 2 and len(calls) == 2
    assert min(samples) >= 15.0  # ms: the sleep is inside the timed window


def test_median_ms_and_bad_configs() -> None:
    assert median_ms(lambda: None, repeats=3) >= 0
    with pytest.raises(ConfigError):
        TimingConfig(repeats=0)
    with pytest.raises(ConfigError):
        TimingConfig(warmup=-1)
