"""``SerialDevice``: the shared life cycle of serial drivers (open, handshake, stream, reconnect, time-outs).

A driver supplies the protocol: ``_handshake`` / ``_start_stream`` / ``_stop_stream`` (commands and replies),
and ``ingest`` (bytes → placed rows in mV), usually through a ``FrameScanner`` and a ``SampleClock``.

When the port fails (the device is unplugged, the pty closes) ``read`` closes it and retries with back-off for
``reconnect`` seconds, redoing the handshake; the samples missed meanwhile become NaN rows, their number taken from
the host clock. A device that stays open but sends nothing valid for ``timeout`` seconds raises ``DeviceError``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np

from ..errors import DeviceError
from .base import Chunk, Device, DeviceInfo
from .clock import RowAssembler, SampleClock
from .framing import Frame, FrameFormat, FrameScanner
from .serial_port import LOST_ERRORS, Backoff, SerialPort
from .url import DeviceUrl, ParamSpec, lead_map

log = logging.getLogger(__name__)

Rows = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]  # indices (n,), values (n, wire) mV, lead-off or None


def serial_params(baud: int, timeout: float = 5.0) -> tuple[ParamSpec, ...]:
    """The URL parameters every serial driver takes."""
    return (
        ParamSpec("baud", "int", baud, "serial baud rate", minimum=300, maximum=4_000_000),
        ParamSpec("timeout", "float", timeout, "seconds without valid data before giving up", minimum=0.1),
        ParamSpec("reconnect", "float", 30.0, "seconds to keep reopening a port that went away (0: never)",
                  minimum=0.0),
    )


def leads_param(default: tuple[str, ...]) -> ParamSpec:
    return ParamSpec("leads", "leads", default, "lead name of each channel in wire order, '-' for an unused one")


def empty_rows(wire_channels: int) -> Rows:
    return np.zeros(0, dtype=np.int64), np.zeros((0, wire_channels), dtype=np.float32), None


class SerialDevice(Device):
    """Base of the serial drivers; subclasses set ``wire_channels`` and the protocol hooks."""

    wire_channels: ClassVar[int]
    reports_lead_off: ClassVar[bool] = False
    max_handshake_wait: ClassVar[float] = 3.0  # per reply; shortened by a smaller ?timeout=

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self.port = SerialPort(url.target, int(self.params["baud"]))
        names = self.params.get("leads") or self.spec.default_leads or ()
        self._channel_index, self._leads = lead_map(tuple(names), self.wire_channels, url.text)
        self._channel_array = np.asarray(self._channel_index, dtype=np.intp)
        self.rows = RowAssembler(len(self._leads), with_lead_off=self.reports_lead_off)
        fmt = self.frame_format()
        self.scanner: FrameScanner | None = FrameScanner(fmt) if fmt is not None else None
        self.clock = SampleClock(self.sampling_rate(), self.counter_modulus(), self.repeats_are_samples(), self.stats)
        self._skipped_before = 0
        self._lost_since: float | None = None
        self._backoff: Backoff | None = None
        self._last_frame_time: float | None = None
        self._reanchor_pending = False
        self._last_valid = time.monotonic()

    # ---- protocol hooks ------------------------------------------------------------------------------------
    @property
    def handshake_timeout(self) -> float:
        """Seconds to wait for each reply during the handshake."""
        return min(self.max_handshake_wait, float(self.params["timeout"]))

    def sampling_rate(self) -> float:
        assert self.spec.fs is not None
        return float(self.params.get("fs", self.spec.fs))

    def frame_format(self) -> FrameFormat | None:
        return None

    def counter_modulus(self) -> int | None:
        return self.scanner.fmt.counter_modulus if self.scanner is not None else None

    def repeats_are_samples(self) -> bool:
        return bool(self.scanner is not None and self.scanner.fmt.repeats_allowed)

    def _handshake(self) -> None:
        """Talk to the device after the port opens (raise ``DeviceError`` if it does not answer)."""

    def _start_stream(self) -> None:
        """Command the device to stream (devices that always stream need nothing)."""

    def _stop_stream(self) -> None:
        """Command the device to stop streaming."""

    def _decode(self, frames: list[Frame]) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, wire) float32 mV and (n, wire) lead-off flags (or ``None``) for accepted frames."""
        raise NotImplementedError

    def ingest(self, data: bytes, t: float) -> Rows:
        """Bytes → rows placed at their sample indices (default: scanner → decode → counter clock).

        The read path calls it with what the port delivered; it also decodes captured bytes offline (no port).
        Returns indices (n,), values (n, wire channels) mV and lead-off flags or ``None``; never raises on bad
        bytes (they are skipped and counted in ``stats``).
        """
        assert self.scanner is not None
        frames = self.scanner.feed(data)
        self._sync_scan_stats()
        if not frames:
            return empty_rows(self.wire_channels)
        self.stats.frames += len(frames)
        values, lead_off = self._decode(frames)
        indices = np.fromiter((self.clock.place(f.counter, t) for f in frames), dtype=np.int64, count=len(frames))
        if (indices < 0).any():  # repeated counters that are not new samples
            keep = indices >= 0
            indices, values = indices[keep], values[keep]
            lead_off = lead_off[keep] if lead_off is not None else None
        return indices, values, lead_off

    def _reset_session(self) -> None:
        """Forget partial frames after a reconnection."""
        if self.scanner is not None:
            self._skipped_before += self.scanner.stats.skipped_bytes
            self.scanner.reset()
            self.scanner.stats.skipped_bytes = 0

    # ---- Device interface ----------------------------------------------------------------------------------
    @property
    def info(self) -> DeviceInfo:
        return DeviceInfo(
            kind=self.spec.kind,
            url=self.url.text,
            source=self.port.path,
            leads=self._leads,
            fs=self.sampling_rate(),
            gain=self.gain(),
            mv_per_count=self.mv_per_count(),
            lead_off_detection=self.reports_lead_off,
            extra=self.info_extra(),
        )

    def gain(self) -> float | None:
        value = self.params.get("gain")
        return float(value) if value is not None else None

    def mv_per_count(self) -> float | None:
        return None

    def info_extra(self) -> dict[str, Any]:
        return {"baud": self.port.baud, "wire_channels": self.wire_channels,
                "channel_index": list(self._channel_index)}

    def open(self) -> None:
        if self._opened:
            return
        self._lost_since, self._backoff = None, None  # a fresh open after giving up starts over
        self._reset_session()
        self.port.open()
        try:
            self._handshake()
        except BaseException:
            self.port.close()
            raise
        self._opened = True
        log.info("opened %s on %s (%s Hz, leads %s)", self.spec.kind, self.port.path, self.sampling_rate(),
                 ",".join(self._leads))

    def start(self) -> None:
        if not self._opened:
            self.open()
        self._start_stream()
        self._started = True
        self._last_valid = time.monotonic()

    def stop(self) -> None:
        if self._started and self.port.is_open:
            try:
                self._stop_stream()
            except (DeviceError, LOST_ERRORS):
                log.debug("stop command to %s failed", self.port.path, exc_info=True)
        self._started = False

    def close(self) -> None:
        self.port.close()
        self._opened = False
        self._started = False

    def read(self, timeout: float = 0.5) -> Chunk | None:
        if not self._started:
            raise DeviceError(f"{self.spec.kind} on {self.port.path}: read() before start()")
        deadline = time.monotonic() + max(0.0, timeout)
        silence = float(self.params["timeout"])
        while True:
            now = time.monotonic()
            if self._lost_since is not None:
                if not self._try_reconnect():
                    assert self._backoff is not None
                    pause = min(deadline, self._backoff.next_attempt) - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    if time.monotonic() >= deadline:
                        return self._empty()
                    continue
            try:
                data = self.port.read_available(max(0.0, min(deadline - now, 0.05)))
            except LOST_ERRORS as exc:
                self._mark_lost(exc)
                continue
            if data:
                t = time.time()
                if self._reanchor_pending:
                    self._reanchor_pending = False
                    self.clock.reanchor(self._last_frame_time or t, t)
                indices, values, lead_off = self.ingest(data, t)
                if indices.size:
                    self._last_valid = time.monotonic()
                    self._last_frame_time = t
                    return self._chunk(indices, values, lead_off)
            if time.monotonic() - self._last_valid > silence:
                raise DeviceError(
                    f"no valid data from {self.spec.kind} on {self.port.path} for {silence:g} s "
                    f"(is it powered and streaming? right port and baud rate {self.port.baud}?)"
                )
            if time.monotonic() >= deadline:
                return self._empty()

    # ---- helpers -------------------------------------------------------------------------------------------
    def _empty(self) -> Chunk:
        return Chunk.empty(self.rows.emitted, len(self._leads), self.reports_lead_off)

    def _chunk(self, indices: np.ndarray, values: np.ndarray, lead_off: np.ndarray | None) -> Chunk:
        values = values[:, self._channel_array]
        if lead_off is not None:
            lead_off = lead_off[:, self._channel_array]
            self.stats.lead_off_samples += int(lead_off.any(axis=1).sum())
        chunk = self.rows.chunk(indices, values, lead_off)
        self.stats.samples += chunk.n
        return chunk

    def _sync_scan_stats(self) -> None:
        if self.scanner is not None:
            self.stats.skipped_bytes = self._skipped_before + self.scanner.stats.skipped_bytes

    def _mark_lost(self, exc: BaseException) -> None:
        self.port.close()
        window = float(self.params["reconnect"])
        message = f"{self.spec.kind} on {self.port.path} went away ({str(exc).splitlines()[0] if str(exc) else exc!r})"
        if window <= 0:
            raise DeviceError(message) from None
        log.warning("%s; reconnecting for up to %g s", message, window)
        self._lost_since = time.monotonic()
        self._backoff = Backoff(window)

    def _try_reconnect(self) -> bool:
        backoff = self._backoff
        assert backoff is not None
        if not backoff.due():
            if backoff.expired():
                raise DeviceError(
                    f"{self.spec.kind} on {self.port.path} went away and did not come back within "
                    f"{backoff.window:g} s"
                )
            return False
        try:
            self.port.open()
            self._reset_session()
            self._handshake()
            self._start_stream()
        except (DeviceError, LOST_ERRORS) as exc:
            self.port.close()
            log.debug("reconnect to %s failed: %s", self.port.path, exc)
            backoff.failed()
            if backoff.expired():
                raise DeviceError(
                    f"{self.spec.kind} on {self.port.path} went away and did not come back within "
                    f"{backoff.window:g} s"
                ) from None
            return False
        log.warning("%s on %s is back after %.1f s", self.spec.kind, self.port.path,
                    time.monotonic() - (self._lost_since or time.monotonic()))
        self.stats.reconnects += 1
        self._lost_since = None
        self._backoff = None
        self._reanchor_pending = True
        self._last_valid = time.monotonic()
        return True
