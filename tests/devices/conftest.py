"""Fixtures for the acquisition tests: simulators on real pseudo-terminals and a chunk collector."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from uniecg_edge.devices.base import Chunk, Device
from uniecg_edge.devices.simulators import Simulator, SimulatorConfig, create_simulator


@pytest.fixture
def simulator() -> Iterator[Callable[..., Simulator]]:
    """``simulator(kind, **config)``: a started simulator, stopped at the end of the test."""
    started: list[Simulator] = []

    def make(kind: str, **config: object) -> Simulator:
        sim = create_simulator(kind, SimulatorConfig(**config))  # type: ignore[arg-type]
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
        assert sim.error is None, f"simulator thread failed: {sim.error!r}"


def collect(
    device: Device, n_samples: int, wall_limit: float = 20.0
) -> tuple[np.ndarray, np.ndarray | None, list[Chunk]]:
    """Read until ``n_samples`` rows arrived; checks that chunks are contiguous. Returns samples, lead-off, chunks."""
    chunks: list[Chunk] = []
    got = 0
    deadline = time.monotonic() + wall_limit
    expected_start = None
    while got < n_samples:
        assert time.monotonic() < deadline, f"only {got} of {n_samples} samples in {wall_limit} s"
        chunk = device.read(timeout=0.2)
        assert chunk is not None
        if expected_start is not None:
            assert chunk.start == expected_start, "chunks must be contiguous"
        expected_start = chunk.end
        assert chunk.samples.dtype == np.float32
        assert chunk.samples.shape[1] == device.info.channels
        if chunk.lead_off is not None:
            assert chunk.lead_off.shape == chunk.samples.shape
        chunks.append(chunk)
        got += chunk.n
    samples = np.concatenate([c.samples for c in chunks])[:n_samples]
    flags = None
    if chunks[0].lead_off is not None:
        flags = np.concatenate([c.lead_off for c in chunks if c.lead_off is not None])[:n_samples]
    return samples, flags, chunks
