"""A multi-channel ring buffer addressed by absolute sample index, and fixed windows over it.

The device thread writes (never blocked for long: one lock, copies only); the pipeline reads windows. When full,
the oldest samples are overwritten. A write that starts later than the next expected index (a packet-counter
jump) leaves NaN in the gap, at the gap's true time: samples are never shifted. ``SlidingWindows`` yields the
10-s windows (configurable length and hop) as soon as each is complete, each with its first sample's index.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["RingBuffer", "Window", "SlidingWindows"]


class RingBuffer:
    """``capacity`` samples of ``n_channels`` float32 channels; indices are absolute (first write starts at 0
    unless given)."""

    def __init__(self, n_channels: int, capacity: int) -> None:
        if n_channels < 1 or capacity < 1:
            raise ConfigError(f"ring buffer needs channels >= 1 and capacity >= 1 (got {n_channels}, {capacity})")
        self.n_channels = int(n_channels)
        self.capacity = int(capacity)
        self._data = np.full((self.n_channels, self.capacity), np.nan, dtype=np.float32)
        self._first = 0  # absolute index of the first sample ever written
        self._end = 0  # absolute index one past the newest sample
        self._started = False
        self._lock = threading.RLock()
        self.overwritten = 0  # samples dropped from the old end so far
        self.gap_samples = 0  # NaN samples inserted for gaps so far

    @property
    def end_index(self) -> int:
        """Absolute index one past the newest sample."""
        return self._end

    @property
    def start_index(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(self._first, self._end - self.capacity)

    def write(self, chunk: np.ndarray, start_index: int | None = None) -> None:
        """Append (channels, n) samples; ``start_index`` is the absolute index of the first one (None: right
        after the previous write). A jump forward fills NaN; a start before the current end is refused."""
        x = np.asarray(chunk, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :] if self.n_channels == 1 else x[:, None]
        if x.shape[0] != self.n_channels:
            raise ConfigError(f"ring buffer has {self.n_channels} channels, chunk has {x.shape[0]}")
        with self._lock:
            if not self._started:
                self._started = True
                self._first = self._end = int(start_index) if start_index is not None else 0
            elif start_index is not None and start_index != self._end:
                if start_index < self._end:
                    raise ConfigError(f"write at sample {start_index} overlaps what is held (up to {self._end})")
                gap = int(start_index) - self._end
                self._put(np.full((self.n_channels, min(gap, self.capacity)), np.nan, np.float32),
                          self._end + max(0, gap - self.capacity))
                self.gap_samples += gap
                self._end = int(start_index)
            self._put(x, self._end)

    def _put(self, x: np.ndarray, at: int) -> None:
        n = x.shape[1]
        if n > self.capacity:
            x, at = x[:, -self.capacity:], at + n - self.capacity
            n = self.capacity
        pos = at % self.capacity
        first = min(n, self.capacity - pos)
        self._data[:, pos: pos + first] = x[:, :first]
        self._data[:, : n - first] = x[:, first:]
        old_start = self.start_index
        self._end = max(self._end, at + n)
        self.overwritten += self.start_index - old_start

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start`` to ``stop`` (absolute, stop exclusive) as a copy; refuses what is not held."""
        with self._lock:
            if start < self.start_index or stop > self._end or stop < start:
                raise ConfigError(f"samples {start}-{stop} not held (held: {self.start_index}-{self._end})")
            idx = np.arange(start, stop) % self.capacity
            return self._data[:, idx].copy()

    def latest(self, n: int) -> tuple[np.ndarray, int]:
        """The newest ``n`` samples (fewer if fewer are held) and the absolute index of the first."""
        with self._lock:
            start = max(self.start_index, self._end - int(n))
            return self.read(start, self._end), start


@dataclass
class Window:
    start_index: int  # absolute index of the first sample
    data: np.ndarray  # (channels, window samples), NaN where samples are missing


class SlidingWindows:
    """Windows of ``window_s`` every ``hop_s`` seconds over a stream at ``fs``, with their sample indices."""

    def __init__(self, fs: float, n_channels: int, window_s: float = 10.0, hop_s: float = 2.0,
                 capacity_s: float | None = None) -> None:
        if window_s <= 0 or hop_s <= 0:
            raise ConfigError(f"window ({window_s}) and hop ({hop_s}) must be positive seconds")
        self.fs = float(fs)
        self.window = int(round(window_s * fs))
        self.hop = int(round(hop_s * fs))
        capacity = int(round((capacity_s or 2 * window_s + hop_s) * fs))
        self.buffer = RingBuffer(n_channels, max(capacity, self.window + self.hop))
        self._next_start: int | None = None

    def push(self, chunk: np.ndarray, start_index: int | None = None) -> list[Window]:
        """Write a chunk; return the windows completed by it (oldest first). Windows the buffer has already
        overwritten (the reader fell behind) are skipped."""
        self.buffer.write(chunk, start_index)
        if self._next_start is None:
            self._next_start = self.buffer.start_index
        ready = []
        while self._next_start + self.window <= self.buffer.end_index:
            if self._next_start < self.buffer.start_index:
                behind = self.buffer.start_index - self._next_start
                self._next_start += -(-behind // self.hop) * self.hop
                continue
            ready.append(Window(self._next_start, self.buffer.read(self._next_start, self._next_start + self.window)))
            self._next_start += self.hop
        return ready
