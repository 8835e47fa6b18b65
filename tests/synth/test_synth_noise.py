"""Noise sources: each shows up with its own signature and size, independently of the others."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from uniecg_edge.synth import NoiseConfig, SynthConfig, synthesize

FS = 500.0
DURATION_S = 20.0


def _noise_only(noise: NoiseConfig, seed: int = 0) -> np.ndarray:
    """(12, n) noise as it reaches the leads: the noisy record minus the clean one of the same seed."""
    noisy = synthesize(SynthConfig(noise=noise, seed=seed), DURATION_S).record.signal.astype(np.float64)
    clean = synthesize(SynthConfig(seed=seed), DURATION_S).record.signal.astype(np.float64)
    return noisy - clean


def test_default_config_is_clean_and_noise_leaves_the_beats_alone() -> None:
    assert SynthConfig().noise.is_clean
    noisy = synthesize(SynthConfig(noise=NoiseConfig(emg_mv=0.05, mains_mv=0.1), seed=4), 10.0)
    clean = synthesize(SynthConfig(seed=4), 10.0)
    assert np.array_equal(noisy.r_peaks, clean.r_peaks) and noisy.beat_labels == clean.beat_labels


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_interference_is_a_line_at_the_mains_frequency(mains_hz: float) -> None:
    noise = _noise_only(NoiseConfig(mains_mv=0.1, mains_hz=mains_hz))
    freqs, power = sps.periodogram(noise, fs=FS, axis=1)
    assert np.all(np.abs(freqs[np.argmax(power, axis=1)] - mains_hz) < 0.1)
    amplitude = np.sqrt(2.0) * noise.std(axis=1)
    assert 0.05 < amplitude.mean() < 0.2


def test_baseline_wander_is_slow_and_sized_as_asked() -> None:
    noise = _noise_only(NoiseConfig(baseline_mv=0.5))
    freqs, power = sps.periodogram(noise, fs=FS, axis=1)
    assert np.all(power[:, freqs < 1.0].sum(axis=1) > 0.95 * power.sum(axis=1))
    typical = np.median(np.ptp(noise, axis=1) / 2.0)
    assert 0.2 < typical < 1.2


def test_muscle_noise_is_broadband_high_frequency_with_the_asked_rms() -> None:
    noise = _noise_only(NoiseConfig(emg_mv=0.05))
    rms = noise.std(axis=1)
    assert 0.025 < rms.mean() < 0.075
    freqs, power = sps.periodogram(noise, fs=FS, axis=1)
    assert np.all(power[:, freqs > 15.0].sum(axis=1) > 0.9 * power.sum(axis=1))
    assert abs(np.corrcoef(noise[0], noise[6])[0, 1]) < 0.9  # not one common waveform


def test_electrode_motion_makes_sparse_large_excursions() -> None:
    noise = _noise_only(NoiseConfig(motion_mv=1.0, motion_events_per_min=6.0), seed=2)
    assert np.abs(noise).max() > 0.4
    quiet = np.mean(np.abs(noise).max(axis=0) < 0.02)
    assert quiet > 0.1  # bursts, not a continuous disturbance
    none = _noise_only(NoiseConfig(motion_mv=1.0, motion_events_per_min=0.0), seed=2)
    assert np.abs(none).max() < 1e-6


def test_sources_are_independent_random_streams() -> None:
    both = _noise_only(NoiseConfig(mains_mv=0.1, emg_mv=0.05), seed=9)
    mains = _noise_only(NoiseConfig(mains_mv=0.1), seed=9)
    emg = _noise_only(NoiseConfig(emg_mv=0.05), seed=9)
    assert np.max(np.abs(both - (mains + emg))) < 1e-5


def test_negative_noise_amplitudes_are_refused() -> None:
    from uniecg_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="emg_mv"):
        NoiseConfig(emg_mv=-0.1)


@pytest.mark.parametrize("tremor_hz", [4.5, 8.0])
def test_limb_tremor_sits_in_the_fibrillatory_band_and_spares_the_chest_electrodes(tremor_hz: float) -> None:
    noise = _noise_only(NoiseConfig(tremor_mv=0.1, tremor_hz=tremor_hz), seed=3)
    freqs, power = sps.periodogram(noise, fs=FS, axis=1)
    band = np.abs(freqs - tremor_hz) < 0.6
    limb = noise[:6]
    assert np.all(power[:6, band].sum(axis=1) > 0.95 * power[:6].sum(axis=1))
    assert 0.02 < limb.std(axis=1).max() < 0.15
    # the chest electrodes do not shake: V1-V6 only carry the limbs' share through Wilson's terminal
    assert noise[6:].std(axis=1).max() < limb.std(axis=1).max()
    assert np.allclose(noise[2], noise[1] - noise[0], atol=1e-4)  # still at the electrodes: III = II - I


def test_tremor_is_its_own_stream_and_its_frequency_is_checked() -> None:
    from uniecg_edge.errors import ConfigError

    both = _noise_only(NoiseConfig(emg_mv=0.05, tremor_mv=0.1), seed=9)
    emg = _noise_only(NoiseConfig(emg_mv=0.05), seed=9)
    tremor = _noise_only(NoiseConfig(tremor_mv=0.1), seed=9)
    assert np.max(np.abs(both - (emg + tremor))) < 1e-5
    assert not NoiseConfig(tremor_mv=0.1).is_clean
    with pytest.raises(ConfigError, match="tremor_hz"):
        NoiseConfig(tremor_mv=0.1, tremor_hz=25.0)
