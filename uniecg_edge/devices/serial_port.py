"""Opening serial ports with one-line errors, reading what has arrived, and reconnection back-off.

pyserial traps handled here: ``Serial.open()`` flushes the input buffer (bytes sent before the open are lost, so
handshakes send a command first and read the reply after); a read returns whatever arrived (packets split across
reads); a vanished device raises ``SerialException`` from ``read``. Ports are opened with ``exclusive=True`` so a
second program gets "busy" instead of interleaved bytes.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Any

from ..errors import DeviceError

log = logging.getLogger(__name__)

# What a vanished port raises: pyserial's SerialException derives from OSError (IOError).
LOST_ERRORS = OSError


def _serial() -> Any:
    import serial  # pyserial; imported here so that importing the package stays cheap

    return serial


def describe_open_error(path: str, exc: BaseException) -> str:
    """One line naming the port and the reason it could not be opened."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text:
        return f"serial port {path} not found (is the device plugged in? check the path)"
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text or "busy" in text:
        return f"serial port {path} is busy (another program has it open)"
    if code == errno.EACCES or "Permission denied" in text:
        return f"permission denied on serial port {path} (add your user to the 'dialout' group)"
    reason = text.splitlines()[0] if text else type(exc).__name__
    return f"cannot open serial port {path}: {reason}"


class SerialPort:
    """A pyserial port with reads that never wait longer than asked."""

    def __init__(self, path: str, baud: int) -> None:
        self.path = path
        self.baud = baud
        self._ser: Any = None

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    def open(self) -> None:
        serial = _serial()
        if not self.path:
            raise DeviceError("no serial port given (the URL needs a path, e.g. openbci:///dev/ttyUSB0)")
        try:
            self._ser = serial.Serial(self.path, self.baud, timeout=0.05, write_timeout=2.0, exclusive=True)
        except (OSError, serial.SerialException, ValueError) as exc:
            raise DeviceError(describe_open_error(self.path, exc)) from None

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - the port may already be gone
                log.debug("closing %s failed", self.path, exc_info=True)

    def write(self, data: bytes) -> None:
        if self._ser is None:
            raise DeviceError(f"serial port {self.path} is not open")
        self._ser.write(data)
        self._ser.flush()

    def read_available(self, wait: float) -> bytes:
        """Whatever has arrived, waiting up to ``wait`` s for the first byte. Raises ``LOST_ERRORS`` if gone."""
        ser = self._ser
        if ser is None:
            raise OSError(errno.EBADF, f"serial port {self.path} is not open")
        waiting = ser.in_waiting
        if waiting:
            return bytes(ser.read(waiting))
        ser.timeout = max(0.0, wait)
        first = ser.read(1)
        if not first:
            return b""
        more = ser.in_waiting
        return bytes(first) + (bytes(ser.read(more)) if more else b"")

    def read_until(self, marker: bytes, timeout: float) -> bytes:
        """Bytes up to and including ``marker``; returns what arrived (without it) after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        data = bytearray()
        while marker not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            data += self.read_available(min(left, 0.05))
        return bytes(data)

    def drain(self, quiet: float = 0.05, limit: float = 1.0) -> bytes:
        """Read until nothing arrives for ``quiet`` s (at most ``limit`` s); returns what was read."""
        deadline = time.monotonic() + limit
        data = bytearray()
        while time.monotonic() < deadline:
            piece = self.read_available(quiet)
            if not piece:
                break
            data += piece
        return bytes(data)


class Backoff:
    """Delays between reconnection attempts: 0.1 s doubling up to ``cap``, for at most ``window`` seconds."""

    def __init__(self, window: float, first: float = 0.1, cap: float = 2.0) -> None:
        self.window = window
        self.first = first
        self.cap = cap
        self.started = time.monotonic()
        self._delay = first
        self.next_attempt = self.started

    def expired(self) -> bool:
        return time.monotonic() - self.started > self.window

    def due(self) -> bool:
        return time.monotonic() >= self.next_attempt

    def failed(self) -> None:
        self.next_attempt = time.monotonic() + self._delay
        self._delay = min(self.cap, self._delay * 2)
