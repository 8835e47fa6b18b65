"""``GapTracker``: runs of missing rows in the stream (lost packets, outages, rows the pipeline could not take).

A row is missing when every channel is NaN, or when the stream jumps over it (a chunk that starts later than the
previous one ended). A gap is reported once it closes (the first present row after it) or at the end of the run.
"""

from __future__ import annotations

import numpy as np


class GapTracker:
    def __init__(self) -> None:
        self._next = 0  # one past the last row seen
        self._run_start: int | None = None

    def feed(self, start: int, samples: np.ndarray) -> list[tuple[int, int]]:
        """Rows ``start ..`` of the stream; returns the gaps (first missing index, length) that closed."""
        closed: list[tuple[int, int]] = []
        if start > self._next and self._run_start is None:
            self._run_start = self._next
        missing = np.isnan(samples).all(axis=1) if samples.shape[0] else np.zeros(0, dtype=bool)
        if missing.size:
            changes = np.flatnonzero(np.diff(missing.astype(np.int8))) + 1
            bounds = [0, *changes.tolist(), missing.size]
            for a in bounds[:-1]:
                if missing[a]:
                    if self._run_start is None:
                        self._run_start = start + a
                elif self._run_start is not None:
                    closed.append((self._run_start, start + a - self._run_start))
                    self._run_start = None
        self._next = max(self._next, start + missing.size)
        return closed

    def finish(self) -> list[tuple[int, int]]:
        """The gap still open at the end of the stream, if any."""
        if self._run_start is None:
            return []
        gap = [(self._run_start, self._next - self._run_start)]
        self._run_start = None
        return gap
