"""Every serial driver end to end through pyserial against its simulator on a real pseudo-terminal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from uniecg_edge.devices import device_from_url, open_device
from uniecg_edge.devices.simulators.pty_port import PtyPort
from uniecg_edge.errors import ConfigError, DeviceError

from .conftest import collect

FAST_KINDS = ["openbci", "openbci-daisy", "olimex", "ads1292r", "hackeeg"]


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_driver_delivers_exactly_what_the_device_sent(kind, simulator):
    sim = simulator(kind, speed=12)
    with open_device(f"{kind}://{sim.path}") as dev:
        dev.start()
        n = int(1.5 * dev.info.fs)
        samples, _, chunks = collect(dev, n)
    assert chunks[0].start == 0
    first = sim.sessions[0][0]
    expected = sim.expected_mv(first, n)[:, list(dev._channel_index)]
    assert not np.isnan(samples).any()
    np.testing.assert_array_equal(samples, expected)
    assert np.ptp(samples[:, 0]) > 0.3, "a real ECG, not a flat line"
    assert dev.stats.gaps == 0 and dev.stats.missing_samples == 0


def test_openbci_gain_from_url_reaches_the_board(simulator):
    sim = simulator("openbci", speed=12)
    with open_device(f"openbci://{sim.path}?gain=8&leads=II,I,V1,V2,V3,V4,V5,V6") as dev:
        assert dev.info.leads[:2] == ("II", "I")
        assert dev.info.mv_per_count == pytest.approx(4.5 / 8 / (2**23 - 1) * 1000)
        dev.start()
        samples, _, _ = collect(dev, 250)
    assert sim.gain_codes[:8] == [4] * 8  # 'x?040110X' per channel: gain code 4 = 8x
    expected = sim.expected_mv(sim.sessions[0][0], 250)
    np.testing.assert_array_equal(samples, expected)  # the board's own lead order I, II...: mapping is by name


def test_unused_channels_are_left_out(simulator):
    sim = simulator("openbci", speed=12)
    with open_device(f"openbci://{sim.path}?leads=I,II,-,-,-,-,-,V6") as dev:
        assert dev.info.leads == ("I", "II", "V6")
        dev.start()
        samples, _, _ = collect(dev, 100)
    expected = sim.expected_mv(sim.sessions[0][0], 100)
    np.testing.assert_array_equal(samples, expected[:, [0, 1, 7]])


@pytest.mark.parametrize("kind", ["openbci", "openbci-daisy", "olimex", "hackeeg"])
def test_lost_packets_become_nan_at_their_true_position(kind, simulator):
    sim = simulator(kind, speed=12, drop_every=37)
    with open_device(f"{kind}://{sim.path}") as dev:
        dev.start()
        n = int(1.5 * dev.info.fs)
        samples, _, _ = collect(dev, n)
    first = sim.sessions[0][0]
    expected = sim.expected_mv(first, n)[:, list(dev._channel_index)]
    lost = sorted({p - first for p in sim.dropped_positions if first <= p < first + n})
    assert len(lost) >= 3
    got_nan = np.isnan(samples)
    if kind == "openbci-daisy":  # one lost packet is half a row: the 8 columns of its board
        assert all(got_nan[i].any() for i in lost)
        assert not got_nan[[i for i in range(n) if i not in lost]].any()
    else:
        assert sorted(np.flatnonzero(got_nan.all(axis=1)).tolist()) == lost
        assert not got_nan[~got_nan.all(axis=1)].any()
    keep = ~got_nan
    np.testing.assert_array_equal(samples[keep], expected[keep])
    assert dev.stats.missing_samples >= len(lost) - (1 if kind == "openbci-daisy" else 0)


@pytest.mark.parametrize("kind", ["openbci", "olimex", "ads1292r", "hackeeg", "openbci-daisy"])
def test_noise_bytes_on_the_line_lose_no_packet(kind, simulator):
    sim = simulator(kind, speed=12, garbage_every=5, seed=3)
    with open_device(f"{kind}://{sim.path}") as dev:
        dev.start()
        n = int(1.5 * dev.info.fs)
        samples, _, _ = collect(dev, n)
    assert sim.garbage_bytes > 100
    expected = sim.expected_mv(sim.sessions[0][0], n)[:, list(dev._channel_index)]
    np.testing.assert_array_equal(samples, expected)
    assert dev.stats.skipped_bytes > 0


def test_hackeeg_reports_lead_off_from_the_status_word(simulator):
    sim = simulator("hackeeg", speed=10, lead_off=((0.4, 0.7),))
    with open_device(f"hackeeg://{sim.path}?leads=I,II,V1,-,-,-,-,-") as dev:
        dev.start()
        samples, flags, _ = collect(dev, 500)
    assert flags is not None
    positions = np.arange(500) / sim.fs  # windows count from the first streamed sample
    off = (positions >= 0.4) & (positions < 0.7)
    assert off.any() and (~off).any()
    np.testing.assert_array_equal(flags, np.repeat(off[:, None], 3, axis=1))
    rail_mv = (2**23 - 1) * 2.4 / 6 / (2**23 - 1) * 1000  # an electrode off drives its channel to full scale
    np.testing.assert_allclose(samples[off], rail_mv, rtol=1e-5)
    expected = sim.expected_mv(sim.sessions[0][0], 500)[:, :3]
    np.testing.assert_array_equal(samples[~off], expected[~off])


def test_ads1292r_flags_lead_off_from_its_first_zero(simulator):
    sim = simulator("ads1292r", speed=10, lead_off=((0.6, 1.0),))
    with open_device(f"ads1292r://{sim.path}") as dev:
        dev.start()
        samples, flags, _ = collect(dev, 200)
    positions = np.arange(200) / sim.fs
    off = (positions >= 0.6) & (positions < 1.0)
    assert flags is not None and off.sum() > 20
    # The frames carry no lead-off bit: a genuine zero sample touching the zeroed run is indistinguishable from it,
    # so a flag may differ from the window only where the true signal is exactly zero too.
    truth = sim.expected_mv(sim.sessions[0][0], 200)[:, 0]
    differs = flags[:, 0] != off
    assert np.all(truth[differs] == 0), np.flatnonzero(differs)
    assert np.all(samples[off, 0] == 0)


def test_ad8232_lines_onto_a_regular_grid_with_lead_off(simulator):
    sim = simulator("ad8232", speed=1, lead_off=((0.7, 0.9),))
    with open_device(f"ad8232://{sim.path}") as dev:
        dev.start()
        t0 = time.monotonic()
        samples, flags, _ = collect(dev, 150)
        elapsed = time.monotonic() - t0
    assert elapsed == pytest.approx(150 / 125, abs=0.4)  # host-timed: real time, not line count
    assert flags is not None
    assert 15 <= int(flags.sum()) <= 35  # ~0.2 s flagged
    assert np.isnan(samples[flags[:, 0], 0]).all()
    good = samples[~flags[:, 0], 0]
    assert np.isfinite(good).all()
    # the waveform and its scale: the device's own 1 kHz truth at the grid times, at the best lag
    truth_1k = sim.expected_mv(sim.sessions[0][0], 2000)[:, 0]
    got = samples[:80, 0]
    fits = []
    for lag_ms in range(0, 200, 2):
        truth = np.interp(lag_ms + np.arange(80) * 8.0, np.arange(2000), truth_1k)
        fits.append((np.corrcoef(got, truth)[0, 1], np.std(got) / np.std(truth)))
    best_r, scale = max(fits)
    assert best_r > 0.9
    assert scale == pytest.approx(1.0, abs=0.15)


def test_missing_port_is_one_line_naming_it():
    with pytest.raises(DeviceError, match="/dev/does-not-exist.*not found"):
        open_device("openbci:///dev/does-not-exist")


def test_busy_port_is_one_line_naming_it(simulator):
    sim = simulator("olimex", speed=5)
    holder = serial.Serial(sim.path, 115200, exclusive=True)
    try:
        with pytest.raises(DeviceError, match=f"{sim.path}.*busy"):
            open_device(f"olimex://{sim.path}")
    finally:
        holder.close()


def test_silent_openbci_times_out_clearly():
    port = PtyPort()  # a port where nothing answers
    try:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="no reply from the OpenBCI board.*'v'"):
            open_device(f"openbci://{port.path}?timeout=0.5")
        assert time.monotonic() - t0 < 3
    finally:
        port.close()


def test_silent_streaming_device_times_out_clearly():
    port = PtyPort()
    try:
        with open_device(f"olimex://{port.path}?timeout=0.6") as dev:
            dev.start()
            t0 = time.monotonic()
            with pytest.raises(DeviceError, match=r"no valid data from olimex .* for 0.6 s"):
                while True:
                    dev.read(timeout=0.2)
            assert time.monotonic() - t0 < 2
    finally:
        port.close()


def test_hackeeg_rejects_settings_the_chip_cannot_do():
    with pytest.raises(ConfigError, match="ads1299 has no gain 3"):
        device_from_url("hackeeg:///dev/x?chip=ads1299&gain=3&fs=250")


def test_reconnects_after_the_device_goes_away_and_marks_the_gap(simulator, tmp_path: Path):
    link = tmp_path / "ttyCYTON"
    sim = simulator("openbci", speed=1, link=str(link))
    with open_device(f"openbci://{link}?reconnect=5") as dev:
        dev.start()
        before, _, _ = collect(dev, 150)
        sim.disconnect(0.5)
        after, _, _ = collect(dev, 400)
    assert dev.stats.reconnects == 1
    assert len(sim.sessions) == 2
    data = np.concatenate([before, after])
    missing = np.isnan(data).all(axis=1)
    gap = np.flatnonzero(missing)
    assert gap.size > 0.4 * 250  # at least the 0.5 s the device was away (less the host's timing slack)
    assert np.all(np.diff(gap) == 1), "one contiguous gap"
    # samples after the gap sit at their true time: the device's second session, within the host's timing slack
    resumed = int(gap[-1] + 1)
    (first0, _), (first1, _) = sim.sessions
    assert abs(resumed - (first1 - first0)) <= 0.1 * 250
    np.testing.assert_array_equal(data[resumed : resumed + 100], sim.expected_mv(first1, 100))
    np.testing.assert_array_equal(data[: gap[0]], sim.expected_mv(first0, int(gap[0])))


def test_gives_up_when_the_device_does_not_come_back(simulator, tmp_path: Path):
    link = tmp_path / "ttyOLI"
    sim = simulator("olimex", speed=5, link=str(link))
    with open_device(f"olimex://{link}?reconnect=0.6") as dev:
        dev.start()
        collect(dev, 50)
        sim.disconnect(30.0)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="went away and did not come back within 0.6 s"):
            while True:
                dev.read(timeout=0.2)
        assert time.monotonic() - t0 < 3
    assert not os.path.exists(link)


def test_opens_again_after_giving_up(simulator, tmp_path: Path):
    link = tmp_path / "ttyOLI2"
    sim = simulator("olimex", speed=5, link=str(link))
    with open_device(f"olimex://{link}?reconnect=0.3") as dev:
        dev.start()
        collect(dev, 50)
        sim.disconnect(2.5)  # far longer than the 0.3 s reconnect window, even on a loaded machine
        with pytest.raises(DeviceError, match="did not come back"):
            while True:
                dev.read(timeout=0.2)
        dev.close()
        deadline = time.monotonic() + 15
        while not os.path.exists(link) and time.monotonic() < deadline:
            time.sleep(0.05)
        dev.start()  # opens again: the earlier loss is forgotten, not reported as "did not come back"
        # the time it was away comes back as a NaN gap of that length; then the device's samples flow again
        finite = 0
        deadline = time.monotonic() + 20
        while finite < 200 and time.monotonic() < deadline:
            rows, _, _ = collect(dev, 100)
            finite += int(np.isfinite(rows).all(axis=1).sum())
    assert finite >= 200
