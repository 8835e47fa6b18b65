"""The acquisition thread: reads the device and hands chunks on, never waiting for anything downstream.

``ChunkQueue`` is bounded by signal time (``capacity`` rows) for the analysis: ``put`` never blocks; a chunk that
does not fit (the consumer is more than ``queue_s`` behind) is still queued, marked ``record_only`` and counted in
``overflow_rows``: the recording gets every acquired sample, only the analysis skips those rows (a gap there).

``AcquisitionThread`` numbers samples on one absolute axis for the whole run. When a device gives up (a
``DeviceError`` from ``read``: silent past its time-out, or gone past its own reconnect window) the thread
reports the fault, closes it, and reopens it with back-off until it streams again; the samples of the outage
are placed by the host clock, so the gap sits at its true time. Reopening builds a fresh driver from the same
URL (a driver that gave up keeps its give-up state); ``device_stats`` sums the counters of every driver
instance. Before the first sample a ``DeviceError`` is a start-up failure (``startup_error``) and the thread ends.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...devices.base import Device, device_from_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveChunk:
    """Rows ``start .. start + n - 1`` on the run's absolute sample axis."""

    start: int
    samples: np.ndarray  # (n, channels) float32 mV, NaN = missing
    lead_off: np.ndarray | None  # (n, channels) bool, or None
    t_host: float  # time.time() when read
    record_only: bool = False  # the analysis was too far behind: record these rows, do not analyse them

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    @property
    def end(self) -> int:
        return self.start + self.n


class ChunkQueue:
    """A bounded, never-blocking hand-off of ``LiveChunk``s between two threads."""

    def __init__(self, capacity_rows: int) -> None:
        self.capacity_rows = int(capacity_rows)
        self._items: collections.deque[LiveChunk] = collections.deque()
        self._rows = 0
        self._cond = threading.Condition()
        self.overflow_rows = 0
        self.peak_rows = 0
        self._closed = False

    def put(self, chunk: LiveChunk) -> bool:
        """Queue ``chunk``; False (counted, and queued ``record_only``) if the analysis has no room for it.

        Never waits. Record-only chunks are bounded by memory, not by ``capacity_rows``: they hold samples that
        would otherwise be lost, and the consumer writes them without analysing them."""
        with self._cond:
            fits = self._rows + chunk.n <= self.capacity_rows
            if fits:
                self._rows += chunk.n
                self.peak_rows = max(self.peak_rows, self._rows)
            else:
                self.overflow_rows += chunk.n
                chunk = dataclasses.replace(chunk, record_only=True)
            self._items.append(chunk)
            self._cond.notify()
            return fits

    def get(self, timeout: float) -> LiveChunk | None:
        """The oldest chunk, or None after ``timeout`` s (or at once when closed and empty)."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            chunk = self._items.popleft()
            if not chunk.record_only:
                self._rows -= chunk.n
            return chunk

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed_and_empty(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


EventSink = Callable[[dict[str, Any]], None]


class AcquisitionThread(threading.Thread):
    """Reads ``device`` (already opened) into ``queue`` until ``stop`` or, with ``limit_rows``, that many rows."""

    def __init__(self, device: Device, queue: ChunkQueue, *, on_event: EventSink, read_timeout: float = 0.2,
                 limit_rows: int | None = None, reopen_first_s: float = 0.2, reopen_cap_s: float = 5.0) -> None:
        super().__init__(name="uniecg-acquisition", daemon=True)
        self.device = device
        self.queue = queue
        self.on_event = on_event
        self.read_timeout = read_timeout
        self.limit_rows = limit_rows
        self.reopen_first_s = reopen_first_s
        self.reopen_cap_s = reopen_cap_s
        self.fs = float(device.info.fs)
        self.first_sample = threading.Event()
        self.finished = threading.Event()
        self.startup_error: BaseException | None = None
        self.error: BaseException | None = None
        self.rows_read = 0  # rows the device delivered (missing rows included)
        self.end_index = 0  # one past the last row handed on
        self.faults = 0
        self.reopens = 0
        self.source_ended = False
        self._stop_event = threading.Event()
        self._offset = 0  # absolute index = offset + device index (changes when the device is reopened)
        self._last_t: float | None = None
        self._rebase_at: int | None = None
        self._retired_stats: dict[str, int] = {}
        self._reconnects_seen = 0

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - reported through .error; the pipeline decides
            self.error = exc
            log.exception("acquisition thread failed")
        finally:
            self._close_device()
            self.finished.set()
            self.first_sample.set()  # wake a start-up wait

    def _loop(self) -> None:
        if not self.device.is_started:
            self.device.start()
        while not self._stop_event.is_set():
            if self.limit_rows is not None and self.end_index >= self.limit_rows:
                return
            try:
                chunk = self.device.read(timeout=self.read_timeout)
            except Exception as exc:  # noqa: BLE001 - DeviceError, or an OSError a driver let through
                if not self.first_sample.is_set():
                    self.startup_error = exc
                    return
                self._device_failed(exc)
                if not self._reopen():
                    return
                continue
            if chunk is None:
                self.source_ended = True
                self.on_event({"event": "device", "kind": "end_of_source", "index": self.end_index,
                               "message": f"{self.device.info.url}: the source ended"})
                return
            self._note_reconnects()
            if chunk.n == 0:
                continue
            if self._rebase_at is not None:  # first chunk after a reopen: place it by the host clock
                self._offset, self._rebase_at = self._rebase_at - chunk.start, None
            start = self._offset + chunk.start
            if start < self.end_index:  # never behind what was handed on
                self._offset += self.end_index - start
                start = self.end_index
            live = LiveChunk(start, chunk.samples, chunk.lead_off, chunk.t_host)
            self.rows_read += chunk.n
            if not self.queue.put(live):
                log.error("the analysis is more than %.0f s behind: %d samples recorded but not analysed",
                          self.queue.capacity_rows / self.fs, chunk.n)
            self.end_index = live.end
            self._last_t = chunk.t_host
            self.first_sample.set()

    def _note_reconnects(self) -> None:
        count = int(self.device.stats.reconnects)
        if count > self._reconnects_seen:
            self._reconnects_seen = count
            self.on_event({"event": "device", "kind": "reconnected", "index": self.end_index,
                           "message": f"{self.device.info.url}: the device is back (reconnect {count})"})

    def _device_failed(self, exc: BaseException) -> None:
        self.faults += 1
        log.error("device fault: %s; reopening", exc)
        self.on_event({"event": "device", "kind": "fault", "index": self.end_index, "message": str(exc)})
        self._close_device()

    def _reopen(self) -> bool:
        """Open a fresh driver for the same URL, with back-off, until it streams again or the run stops."""
        delay = self.reopen_first_s
        while not self._stop_event.is_set():
            self._stop_event.wait(delay)
            delay = min(self.reopen_cap_s, delay * 2)
            if self._stop_event.is_set():
                return False
            try:
                device = device_from_url(self.device.url.text)
                device.open()
            except Exception as exc:  # noqa: BLE001 - DeviceError or OSError: try again later
                log.debug("reopen failed: %s", exc)
                continue
            self._retire(device)
            try:
                self.device.start()
            except Exception as exc:  # noqa: BLE001
                log.debug("restart failed: %s", exc)
                self._close_device()
                continue
            self.reopens += 1
            self._reconnects_seen = 0
            elapsed = time.time() - self._last_t if self._last_t is not None else 0.0
            missed = max(0, int(round(elapsed * self.fs)))
            self._rebase_at = self.end_index + missed
            self.on_event({"event": "device", "kind": "reopened", "index": self.end_index,
                           "message": f"{self.device.info.url}: reopened after a fault (about {missed} samples "
                                      "missed)"})
            return True
        return False

    def _retire(self, fresh: Device) -> None:
        """Keep the old driver's counts and continue with ``fresh``."""
        for key, value in self.device.stats.to_dict().items():
            self._retired_stats[key] = self._retired_stats.get(key, 0) + int(value)
        self.device = fresh

    def device_stats(self) -> dict[str, int]:
        """The device's counters over the whole run (every driver instance)."""
        current = self.device.stats.to_dict()
        return {key: int(value) + self._retired_stats.get(key, 0) for key, value in current.items()}

    def _close_device(self) -> None:
        try:
            if self.device.is_started:
                self.device.stop()
        except Exception:  # noqa: BLE001 - closing must go on
            log.debug("device stop failed", exc_info=True)
        try:
            self.device.close()
        except Exception:  # noqa: BLE001
            log.debug("device close failed", exc_info=True)
