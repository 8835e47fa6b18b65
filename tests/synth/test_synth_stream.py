"""Determinism and streaming: chunk boundaries (and the internal block size) are invisible."""

from __future__ import annotations

import numpy as np
import pytest

from uniecg_edge.errors import InputError
from uniecg_edge.synth import NoiseConfig, SynthConfig, SynthStream, synthesize
from uniecg_edge.synth.engine import SynthEngine

NOISY = NoiseConfig(baseline_mv=0.2, mains_mv=0.05, emg_mv=0.03, motion_mv=0.5, motion_events_per_min=20.0)
CONFIGS = [
    SynthConfig(noise=NOISY, pvc_rate=0.2, pac_rate=0.1, seed=11),
    SynthConfig(rhythm="afib", noise=NOISY, hr_bpm=110, seed=12),
    SynthConfig(rhythm="aflutter", conduction="lbbb", fs=360.0, seed=13),
    SynthConfig(rhythm="av_block_2_mobitz1", hr_bpm=150, pr_ms=300, pvc_rate=0.2, noise=NOISY, seed=14),
]
IDS = ["sinus", "afib", "flutter", "wenckebach"]


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_same_seed_gives_identical_output(config: SynthConfig) -> None:
    a, b = synthesize(config, 8.0), synthesize(config, 8.0)
    assert np.array_equal(a.record.signal, b.record.signal)
    assert np.array_equal(a.r_peaks, b.r_peaks) and a.beat_labels == b.beat_labels


def test_different_seed_changes_noise_and_heart_rate_variability() -> None:
    a = synthesize(SynthConfig(noise=NOISY, seed=1), 10.0)
    b = synthesize(SynthConfig(noise=NOISY, seed=2), 10.0)
    assert not np.array_equal(np.diff(a.r_peaks), np.diff(b.r_peaks))
    clean_a = synthesize(SynthConfig(seed=1), 10.0).record.signal
    clean_b = synthesize(SynthConfig(seed=2), 10.0).record.signal
    assert not np.allclose(a.record.signal - clean_a, b.record.signal - clean_b, atol=1e-3)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_chunked_reads_equal_one_read_and_synthesize(config: SynthConfig) -> None:
    n = int(7.3 * config.fs)
    whole = SynthStream(config).read(n)
    stream = SynthStream(config)
    rng = np.random.default_rng(0)
    parts = []
    while stream.sample_index < n:
        size = int(min(rng.choice([0, 1, 7, 25, 333, 1024, 2500]), n - stream.sample_index))
        parts.append(stream.read(size))
    chunked = np.concatenate(parts, axis=1)
    assert chunked.dtype == np.float32 and chunked.shape == (12, n)
    assert np.array_equal(chunked, whole)
    assert np.array_equal(whole, synthesize(config, n / config.fs).record.signal)


def test_a_longer_record_starts_with_the_shorter_one() -> None:
    config = CONFIGS[0]
    short, long = synthesize(config, 5.0), synthesize(config, 12.0)
    assert np.array_equal(long.record.signal[:, :2500], short.record.signal)
    assert np.array_equal(long.r_peaks[long.r_peaks < 2500], short.r_peaks)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_internal_block_size_does_not_change_the_signal(config: SynthConfig) -> None:
    """Waves, atrial activity, noise and filter state cross block boundaries seamlessly."""

    def render(block: int, n: int) -> np.ndarray:
        engine = SynthEngine(config, block_samples=block)
        return np.concatenate([engine.render_block() for _ in range(-(-n // block))], axis=1)[:, :n]

    n = 4000
    assert np.allclose(render(1024, n), render(97, n), atol=1e-6, rtol=0.0)


def test_read_validates_its_argument() -> None:
    stream = SynthStream(SynthConfig())
    with pytest.raises(InputError):
        stream.read(-1)
    assert stream.read(0).shape == (12, 0) and stream.sample_index == 0
    stream.read(10)
    assert stream.sample_index == 10 and stream.fs == 500.0 and len(stream.leads) == 12


def test_config_round_trips_through_a_dict_and_is_saved_in_the_record() -> None:
    config = SynthConfig(rhythm="afib", noise=NOISY, age=61, sex="male")
    assert SynthConfig.from_dict(config.to_dict()) == config
    record = synthesize(config, 2.0).record
    assert SynthConfig.from_dict(record.meta["synth_config"]) == config
    assert record.meta["rhythm"] == "afib" and record.meta["sex"] == "M"
