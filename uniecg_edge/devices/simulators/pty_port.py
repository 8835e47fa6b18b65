"""The device side of a pseudo-terminal: what a simulator reads commands from and writes bytes to.

``os.openpty()`` gives a master (the simulated device) and a slave (the port a driver opens, e.g. ``/dev/pts/7``).
Both are put in raw mode, so every byte value passes unchanged and nothing is echoed. The simulator does not
keep the slave open itself: the master then reports POLLHUP while no program has the port open, which is how a
simulator knows a client connected (Arduino-style boards reset and start talking then) and why bytes written with
no client are dropped, as by a real device talking to nobody.

An optional ``link`` (a symlink) gives a stable path: ``hang_up()`` closes the pty (the driver sees the device
vanish) and ``reopen()`` creates a new one behind the same link, as a USB device that re-enumerates under a udev
name does.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import tty
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PENDING = 512 * 1024  # bytes held while the client reads slower than the device writes


class PtyPort:
    """Master side of a pty pair, non-blocking, with a bounded output queue."""

    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self.master: int | None = None
        self.slave_path = ""
        self._pending = bytearray()
        self.dropped_bytes = 0
        self.reopen()

    @property
    def path(self) -> str:
        """The path a driver opens (the link if there is one)."""
        return str(self.link) if self.link is not None else self.slave_path

    def reopen(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self.slave_path = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        self._pending.clear()
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(self.slave_path, tmp)
            os.replace(tmp, self.link)

    def hang_up(self) -> None:
        """The device goes away: close the pty (and remove the link)."""
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self._pending.clear()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    close = hang_up

    def client_connected(self) -> bool:
        if self.master is None:
            return False
        poller = select.poll()
        poller.register(self.master, select.POLLIN | select.POLLHUP)
        for _, event in poller.poll(0):
            if event & select.POLLHUP:
                return False
        return True

    def read(self, timeout: float) -> bytes:
        """Bytes the client wrote, waiting up to ``timeout`` s for the first."""
        if self.master is None:
            return b""
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError as exc:  # EIO: no client has the port open
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                raise
            return b""

    def write(self, data: bytes) -> None:
        """Queue bytes for the client; with no client they are lost, as on a real serial line."""
        if self.master is None or not data:
            return
        if not self.client_connected():
            self.dropped_bytes += len(data)
            self._pending.clear()
            return
        room = MAX_PENDING - len(self._pending)
        if room < len(data):
            self.dropped_bytes += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._pending += data
        self.flush()

    def flush(self) -> None:
        while self._pending and self.master is not None:
            try:
                written = os.write(self.master, self._pending[:65536])
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EAGAIN):
                    return
                raise
            del self._pending[:written]

    @property
    def pending(self) -> int:
        return len(self._pending)
