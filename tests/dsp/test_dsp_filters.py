"""Streaming filters: chunked == block, NaN gaps, notch and high-pass behaviour, zero-phase amplitudes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from uniecg_edge.dsp import (
    BandPassFilter,
    FilterChain,
    FilterConfig,
    HighPassFilter,
    LowPassFilter,
    NotchFilter,
    filter_zero_phase,
)
from uniecg_edge.errors import ConfigError

FS = 500.0


def _chunked(filt, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out, pos = [], 0
    while pos < x.shape[-1]:
        n = int(rng.integers(1, 97))
        out.append(filt.process(x[..., pos: pos + n]))
        pos += n
    return np.concatenate(out, axis=-1)


@pytest.mark.parametrize("make", [
    lambda: HighPassFilter(FS, 0.5, n_channels=3),
    lambda: NotchFilter(FS, 60.0, n_channels=3),
    lambda: LowPassFilter(FS, 40.0, n_channels=3),
    lambda: BandPassFilter(FS, 5.0, 25.0, n_channels=3),
    lambda: FilterChain(FS, FilterConfig(), n_channels=3),
])
def test_streaming_equals_block_on_concatenated_chunks(make) -> None:
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(3, 4000)), axis=1) * 0.01 + 1.5  # drifting, with a DC offset
    block = make().process(x)
    streamed = _chunked(make(), x, rng)
    np.testing.assert_allclose(streamed, block, rtol=0, atol=1e-10)
    # and both equal scipy's sosfilt started at the steady state of the first sample
    f = make()
    ref = sps.sosfilt(f.sos, x, axis=-1, zi=sps.sosfilt_zi(f.sos)[:, None, :] * x[None, :, 0, None])[0]
    np.testing.assert_allclose(block, ref, atol=1e-10)


def test_nan_gap_stays_nan_and_does_not_poison_the_state() -> None:
    t = np.arange(5000) / FS
    x = np.sin(2 * np.pi * 1.2 * t) + 0.3
    x_gap = x.copy()
    x_gap[2000:2100] = np.nan
    y = HighPassFilter(FS, 0.5).process(x_gap)
    assert np.isnan(y[2000:2100]).all()
    assert np.isfinite(y[:2000]).all() and np.isfinite(y[2100:]).all()
    # far from the gap the output is what the gap-free signal gives
    y_ref = HighPassFilter(FS, 0.5).process(x)
    np.testing.assert_allclose(y[4500:], y_ref[4500:], atol=0.02)
    # chunked with the gap falling across chunks: identical to the block
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(np.isnan(_chunked(HighPassFilter(FS, 0.5), x_gap, rng)), np.isnan(y))


def test_highpass_removes_offset_and_wander_and_keeps_qrs_band() -> None:
    t = np.arange(20000) / FS
    x = 2.0 + 0.5 * np.sin(2 * np.pi * 0.1 * t) + 0.2 * np.sin(2 * np.pi * 10 * t)
    y = HighPassFilter(FS, 0.5).process(x)[5000:]
    assert abs(np.mean(y)) < 0.01
    amp10 = np.sqrt(2) * np.std(y)
    assert 0.18 < amp10 < 0.22


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_notch_removes_mains_and_keeps_the_qrs(mains: float) -> None:
    t = np.arange(10000) / FS
    hum = 0.3 * np.sin(2 * np.pi * mains * t)
    y = NotchFilter(FS, mains).process(hum)[2000:]
    assert np.std(y) < 0.01 * np.std(hum)
    qrs = np.zeros(5000)
    qrs[2500:2550] = np.hanning(50)  # a 100 ms hump
    z = filter_zero_phase(qrs, FS, FilterConfig(highpass_hz=None, notch_hz=mains, lowpass_hz=None))
    assert abs(z.max() - 1.0) < 0.01


def test_zero_phase_chain_keeps_qrs_amplitude_and_position() -> None:
    t = np.arange(5000)
    qrs = np.exp(-0.5 * ((t - 2500) / 8.0) ** 2)  # an R wave ~40 ms wide
    y = filter_zero_phase(qrs + 1.0, FS)
    assert int(np.argmax(y)) == 2500
    assert 0.85 < y.max() - np.median(y) < 1.05


def test_chain_skips_a_notch_above_nyquist_and_validates() -> None:
    FilterChain(100.0, FilterConfig(notch_hz=60.0, lowpass_hz=40.0))  # 60 Hz is above 50: no notch, no error
    with pytest.raises(ConfigError):
        FilterConfig(notch_hz=55.0)
    with pytest.raises(ConfigError):
        HighPassFilter(FS, 300.0)
    with pytest.raises(ConfigError):
        HighPassFilter(FS, 0.5, n_channels=2).process(np.zeros((3, 10)))
