"""Cost target: the Daisy parser keeps up with the full packet rate (250 packets/s) with a wide margin."""

from __future__ import annotations

import time

import numpy as np

from uniecg_edge.devices import device_from_url
from uniecg_edge.devices.simulators.openbci import cyton_packets

FULL_RATE = 250.0  # packets/s from a Cyton + Daisy (125 rows/s)


def daisy_stream(rows: int, noise_every: int = 97) -> bytes:
    counts = np.random.default_rng(0).integers(-(2**23), 2**23, size=(rows, 16))
    numbers = np.arange(rows)
    board = cyton_packets(counts[:, :8], 2 * (numbers % 128) + 1)
    daisy = cyton_packets(counts[:, 8:], 2 * (numbers % 128) + 2)
    out = bytearray()
    for k in range(rows):
        out += board[k].tobytes() + daisy[k].tobytes()
        if k % noise_every == 0:
            out += b"\xa0\x13\xc0\x00"  # a little line noise, so the resync path runs too
    return bytes(out)


def parse_rate(stream: bytes, piece: int = 4096) -> tuple[float, int]:
    device = device_from_url("openbci-daisy:///dev/null")
    t0 = time.perf_counter()
    rows = 0
    for start in range(0, len(stream), piece):
        indices, _, _ = device.ingest(stream[start : start + piece], time.time())
        rows += indices.size
    elapsed = time.perf_counter() - t0
    return 2 * rows / elapsed, rows


def test_daisy_parser_keeps_up_at_full_rate_with_no_loss():
    rows = 10_000  # 80 s of Cyton + Daisy signal
    packets_per_s, parsed_rows = parse_rate(daisy_stream(rows))
    assert parsed_rows >= rows - 1  # nothing lost (the last row may wait for its Daisy half)
    print(f"Daisy parse throughput: {packets_per_s:,.0f} packets/s ({packets_per_s / FULL_RATE:,.0f}x full rate)")
    assert packets_per_s > 40 * FULL_RATE  # margin for a Jetson core, several times slower than this machine
