"""``PacedDevice``: a device whose samples come from the host (a file, a generator), released in real time × speed.

``read`` hands out the samples whose time has come since ``start`` (sleeping until at least one is due or the
time-out passes), so a consumer sees the same chunk rhythm as from hardware. ``speed`` > 1 replays faster.
"""

from __future__ import annotations

import abc
import time

import numpy as np

from ..errors import DeviceError
from .base import Chunk, Device

MAX_CHUNK_S = 1.0  # at most this much signal per read, so a late reader catches up in steps


class PacedDevice(Device):
    """Subclasses implement ``_produce`` (and ``_length`` for finite sources)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._t0 = 0.0
        self._position = 0

    @property
    def speed(self) -> float:
        return float(self.params.get("speed", 1.0))

    @abc.abstractmethod
    def _produce(self, start: int, n: int) -> np.ndarray:
        """(n, channels) float32 mV for samples ``start .. start + n - 1``."""

    def _length(self) -> int | None:
        """Number of samples of a finite source (``None``: endless)."""
        return None

    def start(self) -> None:
        if not self._opened:
            self.open()
        self._t0 = time.monotonic()
        self._position = 0
        self._started = True

    def stop(self) -> None:
        self._started = False

    def read(self, timeout: float = 0.5) -> Chunk | None:
        if not self._started:
            raise DeviceError(f"{self.url.text}: read() before start()")
        fs = self.info.fs
        length = self._length()
        if length is not None and self._position >= length:
            return None
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            due = int((time.monotonic() - self._t0) * fs * self.speed)
            if length is not None:
                due = min(due, length)
            due = min(due, self._position + int(MAX_CHUNK_S * fs) + 1)
            if due > self._position or time.monotonic() >= deadline:
                break
            wait = (self._position + 1) / (fs * self.speed) - (time.monotonic() - self._t0)
            time.sleep(max(0.0005, min(wait, deadline - time.monotonic())))
        n = max(0, due - self._position)
        samples = self._produce(self._position, n) if n else np.zeros((0, self.info.channels), dtype=np.float32)
        chunk = Chunk(self._position, np.ascontiguousarray(samples, dtype=np.float32), None, time.time())
        self._position += n
        self.stats.samples += n
        self.stats.frames += 1 if n else 0
        return chunk
