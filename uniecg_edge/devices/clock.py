"""Sample positions from packet counters, and contiguous chunks with NaN where samples were lost.

``SampleClock`` turns each accepted frame's counter into the index of its sample: a counter step of k places the
frame k samples after the previous one, so the k - 1 lost samples become NaN at their true position. A counter
that wraps (8 bits: 256 packets, about 1 s at 250 Hz) is ambiguous after a long stall; the host clock picks the
number of whole wraps only when it clearly says that much time went by. After a reconnection the host clock alone
places the first new sample (``reanchor``). ``RowAssembler`` builds contiguous ``Chunk``s from placed rows.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from .base import Chunk, DeviceStats

log = logging.getLogger(__name__)


class SampleClock:
    """Assigns sample indices from counters (mod ``modulus``) or, without a counter, one per frame."""

    max_gap_s = 600.0  # a larger counter jump is a counter restart, placed by the host clock

    def __init__(self, fs: float, modulus: int | None, repeats_are_samples: bool, stats: DeviceStats) -> None:
        self.fs = fs
        self.modulus = modulus
        self.repeats_are_samples = repeats_are_samples
        self.stats = stats
        self._last_counter: int | None = None
        self._last_index = -1
        self._last_time: float | None = None
        self._pending_skip = 0  # samples to skip before the next frame (set by reanchor)

    @property
    def next_index(self) -> int:
        return self._last_index + 1

    def place(self, counter: int | None, t_arrival: float) -> int:
        """Index of the frame with ``counter`` that arrived at host time ``t_arrival``."""
        step = 1
        if self._pending_skip:
            step = 1 + self._pending_skip
            self._pending_skip = 0
            self._count_gap(step - 1)
        elif self.modulus is not None and counter is not None and self._last_counter is not None:
            raw = (counter - self._last_counter) % self.modulus
            if raw == 0:
                self.stats.repeated_counters += 1
                step = 1 if self.repeats_are_samples else 0
            else:
                step = raw
                if raw > 1 and self._last_time is not None:
                    # a long stall can hide whole wraps of the counter: let the host clock add them
                    elapsed = (t_arrival - self._last_time) * self.fs
                    wraps = max(0, round((elapsed - raw) / self.modulus))
                    step = raw + wraps * self.modulus
                if step - 1 > self.max_gap_s * self.fs:
                    # no link loses an hour of packets and comes back: the counter restarted
                    log.warning("packet counter jumped by %d: taken as a restart of the device's counter", step)
                    elapsed = (t_arrival - self._last_time) * self.fs if self._last_time is not None else 1.0
                    step = max(1, round(elapsed))
                if step > 1:
                    self._count_gap(step - 1)
        if counter is not None:
            self._last_counter = counter
        if step == 0:
            return -1  # a duplicate: no new sample
        self._last_index += step
        self._last_time = t_arrival
        return self._last_index

    def _count_gap(self, missing: int) -> None:
        self.stats.gaps += 1
        self.stats.missing_samples += missing
        log.debug("gap of %d samples before sample %d", missing, self._last_index + missing + 1)

    def reanchor(self, t_lost: float, t_back: float) -> None:
        """After a reconnection: skip the samples the host clock says were lost between ``t_lost`` and ``t_back``."""
        self._last_counter = None
        if self._last_index < 0:
            return
        self._pending_skip = max(0, int(math.floor((t_back - t_lost) * self.fs)))
        self._last_time = None


class RowAssembler:
    """Collects placed rows and hands out contiguous chunks (NaN rows where indices were skipped)."""

    def __init__(self, channels: int, with_lead_off: bool) -> None:
        self.channels = channels
        self.with_lead_off = with_lead_off
        self.emitted = 0  # index of the next row to hand out

    def chunk(self, indices: np.ndarray, rows: np.ndarray, lead_off: np.ndarray | None) -> Chunk:
        """Chunk from ``self.emitted`` up to the last index; rows with index < emitted are dropped (duplicates)."""
        t = time.time()
        keep = indices >= self.emitted
        if not keep.all():
            indices, rows = indices[keep], rows[keep]
            lead_off = lead_off[keep] if lead_off is not None else None
        if indices.size == 0:
            return Chunk.empty(self.emitted, self.channels, self.with_lead_off)
        start = self.emitted
        n = int(indices[-1]) - start + 1
        if n == indices.size:  # no gap: the common case
            samples = np.ascontiguousarray(rows, dtype=np.float32)
            flags = None
            if self.with_lead_off:
                flags = lead_off if lead_off is not None else np.zeros(samples.shape, dtype=bool)
        else:
            samples = np.full((n, self.channels), np.nan, dtype=np.float32)
            samples[indices - start] = rows
            flags = None
            if self.with_lead_off:
                flags = np.zeros((n, self.channels), dtype=bool)
                if lead_off is not None:
                    flags[indices - start] = lead_off
        self.emitted = start + n
        return Chunk(start, samples, flags, t)

    def gap_chunk(self, up_to: int) -> Chunk:
        """A chunk of NaN rows from ``emitted`` to ``up_to`` (exclusive)."""
        n = max(0, up_to - self.emitted)
        samples = np.full((n, self.channels), np.nan, dtype=np.float32)
        flags = np.zeros((n, self.channels), dtype=bool) if self.with_lead_off else None
        chunk = Chunk(self.emitted, samples, flags, time.time())
        self.emitted += n
        return chunk
