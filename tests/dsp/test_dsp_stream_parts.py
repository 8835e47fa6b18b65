"""Streaming resampler, lead derivation, ring buffer and sliding windows."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import signal as sps

from uniecg_edge.dsp import RingBuffer, SlidingWindows, StreamingResampler, complete_limb_leads, derive_standard_12
from uniecg_edge.dsp.resample import resample_block
from uniecg_edge.errors import ConfigError, LeadError
from uniecg_edge.leads import STANDARD_LEADS


@pytest.mark.parametrize(("fs_in", "fs_out"), [(250.0, 500.0), (360.0, 500.0), (1000.0, 500.0), (200.0, 500.0)])
def test_resampler_chunked_equals_block_and_matches_resample_poly(fs_in: float, fs_out: float) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(6 * fs_in)) / fs_in
    x = np.stack([np.sin(2 * np.pi * 3 * t), np.sin(2 * np.pi * 17 * t + 1.0)]) + 0.01 * rng.normal(size=(2, t.size))
    block = resample_block(x, fs_in, fs_out)
    r = StreamingResampler(fs_in, fs_out, 2)
    parts, pos = [], 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 150))
        parts.append(r.process(x[:, pos: pos + n]))
        pos += n
    parts.append(r.flush())
    streamed = np.concatenate(parts, axis=1)
    assert streamed.shape == block.shape == (2, int(np.ceil(x.shape[1] * fs_out / fs_in)))
    np.testing.assert_allclose(streamed, block, atol=1e-12)
    ref = sps.resample_poly(x, r.up, r.down, axis=1)
    np.testing.assert_allclose(block, ref, atol=1e-9)


def test_resampler_keeps_a_gap_at_its_time() -> None:
    x = np.sin(2 * np.pi * 2 * np.arange(2500) / 250.0)
    x[1000:1050] = np.nan  # 4.0-4.2 s
    y = resample_block(x, 250.0, 500.0)
    gap = np.flatnonzero(np.isnan(y))
    assert gap.size > 0
    assert abs(gap.min() / 500.0 - 4.0) < 0.01 and abs((gap.max() + 1) / 500.0 - 4.2) < 0.01
    assert np.isfinite(y[:1990]).all() and np.isfinite(y[2110:]).all()


def test_limb_leads_are_derived_exactly_and_only_when_missing() -> None:
    rng = np.random.default_rng(2)
    i, ii = rng.normal(size=(2, 100))
    x, names, derived = complete_limb_leads(np.stack([i, ii]), ("I", "II"))
    assert derived == ("III", "aVR", "aVL", "aVF") and names[2:] == derived
    np.testing.assert_allclose(x[names.index("III")], ii - i)
    np.testing.assert_allclose(x[names.index("aVF")], ii - i / 2)
    _, names2, derived2 = complete_limb_leads(np.stack([i]), ("I",))
    assert derived2 == () and names2 == ("I",)
    x3, _, derived3 = complete_limb_leads(np.stack([i, ii]), ("I", "II"), usable=["I"])
    assert derived3 == () and np.isnan(x3[1]).all()  # nothing derived from an unusable lead
    eight = np.stack([i, ii] + [rng.normal(size=100) for _ in range(6)])
    out, from_i_ii = derive_standard_12(eight, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"])
    assert out.shape == (12, 100) and set(from_i_ii) == {"III", "aVR", "aVL", "aVF"}
    np.testing.assert_allclose(out[STANDARD_LEADS.index("aVR")], -(i + ii) / 2)
    with pytest.raises(LeadError):
        derive_standard_12(eight[:3], ["I", "II", "V1"])


def test_ring_buffer_overwrites_oldest_and_keeps_absolute_indices() -> None:
    rb = RingBuffer(2, 100)
    data = np.arange(250, dtype=np.float32)
    for k in range(0, 250, 30):
        rb.write(np.stack([data[k: k + 30], -data[k: k + 30]]))
    assert rb.end_index == 250 and rb.start_index == 150 and rb.overwritten == 150
    np.testing.assert_array_equal(rb.read(160, 170)[0], data[160:170])
    block, start = rb.latest(20)
    assert start == 230 and np.array_equal(block[1], -data[230:250])
    with pytest.raises(ConfigError):
        rb.read(100, 120)  # overwritten
    with pytest.raises(ConfigError):
        rb.write(np.zeros((2, 5)), start_index=240)  # overlaps what is held


def test_ring_buffer_gap_becomes_nan_at_its_true_time() -> None:
    rb = RingBuffer(1, 1000)
    rb.write(np.ones(100), start_index=0)
    rb.write(2 * np.ones(50), start_index=130)  # 30 samples lost (packet-counter jump)
    x = rb.read(0, 180)[0]
    assert np.all(x[:100] == 1) and np.isnan(x[100:130]).all() and np.all(x[130:] == 2)
    assert rb.gap_samples == 30


def test_sliding_windows_have_length_hop_indices_and_preserve_gaps() -> None:
    fs = 100.0
    sw = SlidingWindows(fs, 1, window_s=10.0, hop_s=2.0)
    signal = np.arange(3000, dtype=np.float32)
    windows = []
    for k in range(0, 3000, 37):
        start = k if k < 1500 else k + 200  # a 2-s gap after sample 1500 (later samples keep their true index)
        windows += sw.push(signal[None, k: k + 37], start_index=start)
    starts = [w.start_index for w in windows]
    assert starts[:3] == [0, 200, 400] and all(b - a == 200 for a, b in zip(starts, starts[1:], strict=False))
    for w in windows:
        assert w.data.shape == (1, 1000)
        expected = np.arange(w.start_index, w.start_index + 1000, dtype=np.float64)
        expected = np.where(expected >= 1700, expected - 200, expected)
        expected[(np.arange(w.start_index, w.start_index + 1000) >= 1517) & (
            np.arange(w.start_index, w.start_index + 1000) < 1717)] = np.nan
        gap = np.isnan(expected)
        assert np.array_equal(np.isnan(w.data[0]), gap)
        np.testing.assert_array_equal(w.data[0][~gap], expected[~gap])


def test_ring_buffer_writer_thread_and_reader_do_not_corrupt() -> None:
    rb = RingBuffer(1, 5000)
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set() and k < 200_000:
            rb.write(np.arange(k, k + 50, dtype=np.float32))
            k += 50

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(300):
            block, start = rb.latest(1000)
            if block.shape[1]:
                np.testing.assert_array_equal(block[0], np.arange(start, start + block.shape[1], dtype=np.float32))
    finally:
        stop.set()
        thread.join()
