"""``playback://`` (a WFDB record in real time × speed) and ``synthetic://`` (the package's generator)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.devices import device_from_url, open_device
from uniecg_edge.errors import ConfigError, RecordError
from uniecg_edge.record import EcgRecord
from uniecg_edge.synth import NoiseConfig, SynthConfig, SynthStream
from uniecg_edge.wfdb_io import read_record, write_record

from .conftest import collect


def test_synthetic_streams_the_generator_in_real_time():
    with open_device("synthetic://?hr=90&axis=30&noise=0.01&seed=4&speed=20") as dev:
        assert dev.info.leads[:3] == ("I", "II", "III") and dev.info.fs == 500.0
        dev.start()
        t0 = time.monotonic()
        samples, flags, chunks = collect(dev, 2000)  # 4 s of signal
        elapsed = time.monotonic() - t0
    assert flags is None
    assert 0.15 <= elapsed < 1.5  # paced (4 s of signal at 20x: 0.2 s), not as fast as possible
    reference = SynthStream(SynthConfig(hr_bpm=90, axis_deg=30, noise=NoiseConfig(emg_mv=0.01), seed=4)).read(2000)
    np.testing.assert_array_equal(samples, reference.T)
    assert len(chunks) > 3


def test_synthetic_lead_selection_and_bad_settings():
    dev = device_from_url("synthetic://?leads=II,V5")
    assert dev.info.leads == ("II", "V5")
    with pytest.raises(ConfigError, match="synthetic://\\?rhythm=nonsense.*rhythm"):
        device_from_url("synthetic://?rhythm=nonsense")
    with pytest.raises(ConfigError, match="valid: .*hr"):
        device_from_url("synthetic://?heart=72")


def test_playback_streams_a_real_record_unchanged(shared_ecg: Path):
    record_path = shared_ecg / "mitdb" / "100.hea"
    with open_device(f"playback://{record_path}?speed=200") as dev:
        assert dev.info.fs == 360.0 and dev.info.leads == ("MLII", "V5")
        dev.start()
        samples, _, _ = collect(dev, 3600)
    truth = read_record(record_path).signal[:, :3600].T
    np.testing.assert_array_equal(samples, truth)


def test_playback_ends_with_none_and_keeps_missing_samples(tmp_path: Path):
    signal = np.sin(np.linspace(0, 20, 600, dtype=np.float32))[None].repeat(2, axis=0)
    signal[1, 100:120] = np.nan
    header = write_record(EcgRecord(signal, 200.0, ("I", "II"), name="short"), tmp_path / "short")
    with open_device(f"playback://{header}?speed=100") as dev:
        dev.start()
        chunks = []
        while (chunk := dev.read(timeout=0.2)) is not None:
            chunks.append(chunk)
    got = np.concatenate([c.samples for c in chunks])
    assert got.shape == (600, 2)
    assert np.isnan(got[100:120, 1]).all() and not np.isnan(got[:, 0]).any()
    np.testing.assert_allclose(got[:, 0], signal[0], atol=1e-3)


def test_playback_loop_keeps_counting(tmp_path: Path):
    signal = np.arange(100, dtype=np.float32)[None] / 1000
    header = write_record(EcgRecord(signal, 100.0, ("II",), name="ramp"), tmp_path / "ramp")
    with open_device(f"playback://{header}?speed=100&loop=1") as dev:
        dev.start()
        samples, _, chunks = collect(dev, 250)
    assert chunks[-1].end >= 250
    np.testing.assert_allclose(samples[:, 0], (np.arange(250) % 100) / 1000, atol=1e-6)


def test_playback_of_a_missing_record_is_a_record_error(tmp_path: Path):
    with pytest.raises(RecordError, match="no-such.hea"):
        open_device(f"playback://{tmp_path}/no-such.hea")
