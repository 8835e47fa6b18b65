"""Memory bandwidth of this machine, measured with a streaming copy (numpy), for the decode ceiling.

A copy of an array far larger than the last-level cache reads every byte once and writes it once, so
``2 x bytes / seconds`` is the bandwidth the copy sustained (the write-allocate read that some CPUs add is not
counted, as in STREAM's "Copy"). The copy runs on 1 thread and on ``threads`` threads (each copies its own slice;
numpy releases the GIL while copying), and the best of ``repeats`` runs of the better setting is the result. The
benchmark probes with every usable core whatever threads the model runs on: the ceiling is the memory's, and a
decoder on fewer cores than it takes to stream it shows as a lower fraction of it.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_ARRAY_BYTES = 256 * 2**20  # per array; two arrays: far beyond any CPU cache, small for an 8 GB Jetson
DEFAULT_REPEATS = 5
GB = 1e9  # decimal, as module data sheets give bandwidth (204.8 GB/s = 256 bit x 6400 MT/s)


@dataclass(frozen=True)
class BandwidthProbe:
    """One streaming-copy measurement."""

    gb_per_s: float  # best run, read + write bytes
    median_gb_per_s: float
    threads: int
    array_bytes: int
    repeats: int
    method: str = "numpy streaming copy (best of repeats; bytes read + written)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _copy_seconds(src: np.ndarray, dst: np.ndarray, pool: ThreadPoolExecutor | None, threads: int) -> float:
    if pool is None or threads <= 1:
        start = time.perf_counter()
        np.copyto(dst, src)
        return time.perf_counter() - start
    bounds = np.linspace(0, src.size, threads + 1).astype(np.int64)
    slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    start = time.perf_counter()
    for future in [pool.submit(np.copyto, dst[s], src[s]) for s in slices]:
        future.result()
    return time.perf_counter() - start


def copy_bandwidth(array_bytes: int = DEFAULT_ARRAY_BYTES, repeats: int = DEFAULT_REPEATS,
                   threads: int = 1) -> BandwidthProbe:
    """Streaming-copy bandwidth with ``threads`` threads: best and median GB/s of ``repeats`` copies."""
    if array_bytes < 2**20 or repeats < 1 or threads < 1:
        raise ValueError("need array_bytes >= 1 MiB, repeats >= 1 and threads >= 1")
    count = array_bytes // 8
    src = np.ones(count, dtype=np.float64)  # written once: every page is resident before timing
    dst = np.zeros(count, dtype=np.float64)
    moved = 2 * count * 8
    rates = []
    with ThreadPoolExecutor(max_workers=threads) if threads > 1 else _NoPool() as pool:
        _copy_seconds(src, dst, pool, threads)  # warm-up: page faults, thread start
        for _ in range(repeats):
            rates.append(moved / _copy_seconds(src, dst, pool, threads) / GB)
    rates.sort()
    return BandwidthProbe(gb_per_s=rates[-1], median_gb_per_s=rates[len(rates) // 2], threads=threads,
                          array_bytes=count * 8, repeats=repeats)


class _NoPool:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def measure_bandwidth(threads: int = 1, array_bytes: int = DEFAULT_ARRAY_BYTES,
                      repeats: int = DEFAULT_REPEATS) -> dict[str, Any]:
    """The machine's streaming bandwidth: the better of 1 thread and ``threads`` threads.

    Returns ``{"gb_per_s", "source": "measured", "probes": [...]}`` (each probe's settings and figures).
    """
    probes = [copy_bandwidth(array_bytes, repeats, threads=1)]
    if threads > 1:
        probes.append(copy_bandwidth(array_bytes, repeats, threads=threads))
    best = max(probes, key=lambda p: p.gb_per_s)
    log.info("streaming copy: %s", ", ".join(f"{p.threads} thread(s) {p.gb_per_s:.1f} GB/s" for p in probes))
    return {"gb_per_s": best.gb_per_s, "source": "measured", "threads": best.threads,
            "probes": [p.to_dict() for p in probes]}
