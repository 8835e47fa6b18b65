"""The acquisition interface: ``Device``, the ``Chunk`` it yields, its ``DeviceInfo`` and the device registry.

A device is opened from a URL whose scheme names its driver (``openbci:///dev/ttyUSB0?gain=24``). Life cycle::

    with open_device("openbci:///dev/ttyUSB0") as dev:   # open(): port + handshake
        dev.start()                                      # the device streams
        while running:
            chunk = dev.read(timeout=0.2)                # never waits longer than ``timeout`` (plus one I/O call)
            if chunk is None:                            # end of a finite source (playback); live devices never
                break
            ...                                          # chunk.samples: (n, channels) float32 mV, NaN = missing
    # __exit__: stop() then close()

Contract for the consumer (the live runtime reads from its own acquisition thread, which must never stall the
rest of the pipeline):

* ``read(timeout)`` returns a ``Chunk`` (possibly with zero rows) within about ``timeout`` seconds, ``None`` at the
  end of a finite source, or raises ``DeviceError`` when the device cannot go on (silent past its time-out, or gone
  and not back within its reconnect window). It does the I/O itself: no hidden thread, nothing to join. The one
  exception to the time bound: the read that reconnects a device redoes its handshake (up to a few seconds), at a
  time when no samples are coming anyway. Call it from one thread; hand chunks to other threads by queue.
* Chunks are contiguous: each one starts at the sample index where the previous one ended (``chunk.start ==
  previous.end``), indices counting samples at ``info.fs`` from the first sample of the stream.
* Samples lost in transit (packet-counter gaps, a disconnection) are NaN rows at their true position, never a shift.
* ``lead_off`` is a (n, channels) bool array where the device reports electrode contact, else ``None``.
* Values are in mV, unfiltered, in the channel order of ``info.leads`` (the ``?leads=`` map of the URL).
* ``stats`` counts frames, skipped bytes, gaps, missing samples and reconnects for the quality gate and logs.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from ..registry import Registry
from .url import DeviceUrl, ParamSpec, parse_device_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """Samples ``start .. start + n - 1`` of a stream.

    ``samples`` (n, channels) float32 mV with NaN where a sample is missing; ``lead_off`` (n, channels) bool or
    ``None`` when the device cannot tell; ``t_host`` the host clock (``time.time()``) when the chunk was read.
    """

    start: int
    samples: np.ndarray
    lead_off: np.ndarray | None
    t_host: float

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    @property
    def end(self) -> int:
        """Index of the sample after the last one of this chunk."""
        return self.start + self.n

    @property
    def missing(self) -> int:
        """Number of rows that are entirely missing (lost in transit)."""
        if self.n == 0:
            return 0
        return int(np.isnan(self.samples).all(axis=1).sum())

    @staticmethod
    def empty(start: int, channels: int, with_lead_off: bool = False) -> Chunk:
        lead_off = np.zeros((0, channels), dtype=bool) if with_lead_off else None
        return Chunk(start, np.zeros((0, channels), dtype=np.float32), lead_off, time.time())


@dataclass(frozen=True)
class DeviceSpec:
    """What a driver declares before anything is opened (shown by ``uniecg-edge devices``)."""

    kind: str
    description: str
    transport: str  # "serial", "file" or "generator"
    fs: float | None  # default sampling rate (None: taken from the source)
    channels: int | None  # channels on the wire (None: taken from the source)
    default_leads: tuple[str, ...] | None
    params: tuple[ParamSpec, ...]
    lead_off: str  # how lead-off is reported, or "not reported"
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "transport": self.transport,
            "fs": self.fs,
            "channels": self.channels,
            "default_leads": list(self.default_leads) if self.default_leads is not None else None,
            "lead_off": self.lead_off,
            "params": [p.to_dict() for p in self.params],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class DeviceInfo:
    """The channels of an opened (or configured) device: lead names, units, rate and scale."""

    kind: str
    url: str
    source: str  # port path or file
    leads: tuple[str, ...]
    fs: float
    units: str = "mV"
    gain: float | None = None  # amplifier gain where the driver knows it
    mv_per_count: float | None = None  # scale of one ADC count, where the data are counts
    lead_off_detection: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return len(self.leads)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["leads"] = list(self.leads)
        return out


@dataclass
class DeviceStats:
    """Running counts kept by every driver (``Device.stats``)."""

    frames: int = 0
    samples: int = 0  # rows delivered, including missing ones
    missing_samples: int = 0  # rows filled with NaN for lost packets or a disconnection
    gaps: int = 0  # counter jumps and disconnections
    repeated_counters: int = 0
    skipped_bytes: int = 0  # bytes outside any accepted frame (noise, text, corruption)
    bad_lines: int = 0  # line protocols: lines that are not samples
    reconnects: int = 0
    lead_off_samples: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Device(abc.ABC):
    """One acquisition device, built from a parsed URL; see the module docstring for the contract."""

    spec: ClassVar[DeviceSpec]

    def __init__(self, url: DeviceUrl) -> None:
        self.url = url
        self.params: dict[str, Any] = url.params
        self.stats = DeviceStats()
        self._opened = False
        self._started = False

    # ---- the interface -------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def info(self) -> DeviceInfo:
        """Lead names, rate, units and scale (valid before ``open``; drivers may refine it on open)."""

    @abc.abstractmethod
    def open(self) -> None:
        """Connect (open the port, handshake). Raises ``DeviceError`` with one line naming the port."""

    @abc.abstractmethod
    def start(self) -> None:
        """Ask the device to stream."""

    @abc.abstractmethod
    def read(self, timeout: float = 0.5) -> Chunk | None:
        """The samples that arrived, within about ``timeout`` s; ``None`` at the end of a finite source."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Ask the device to stop streaming (safe to call when not started)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the port or file (safe to call twice)."""

    # ---- conveniences --------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._opened

    @property
    def is_started(self) -> bool:
        return self._started

    def __enter__(self) -> Device:
        if not self._opened:
            self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._started:
                self.stop()
        except Exception:  # noqa: BLE001 - closing must not mask the original error
            log.debug("stop() failed while leaving the device context", exc_info=True)
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url.text!r})"


DEVICES: Registry[type[Device]] = Registry("device kind")


def register_device(kind: str):  # type: ignore[no-untyped-def]
    """Class decorator: register a ``Device`` subclass under its URL scheme."""

    def decorator(cls: type[Device]) -> type[Device]:
        if cls.spec.kind != kind:
            raise ValueError(f"{cls.__name__}.spec.kind is {cls.spec.kind!r}, registered as {kind!r}")
        DEVICES.add(kind, cls)
        return cls

    return decorator


def device_from_url(url: str) -> Device:
    """Build (without opening) the device a URL names; bad schemes or parameters raise ``ConfigError``."""
    from . import _load_drivers

    _load_drivers()
    scheme = url.split("://", 1)[0].strip().lower() if "://" in url else ""
    cls = DEVICES.get(scheme) if scheme else None
    if cls is None:
        from ..errors import ConfigError

        known = ", ".join(f"{k}://" for k in DEVICES)
        raise ConfigError(f"device URL {url!r} has no scheme (known: {known})")
    return cls(parse_device_url(url, cls.spec.params))


def open_device(url: str) -> Device:
    """Build the device a URL names and open it; use it as a context manager to stop and close it."""
    device = device_from_url(url)
    device.open()
    return device
