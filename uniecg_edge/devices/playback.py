"""``playback://path/record.hea?speed=1``: a WFDB record streamed in real time (or ``speed`` times faster).

The record's own rate, lead names and missing samples (NaN) pass through unchanged; ``?loop=1`` repeats it with
sample indices that keep counting; ``?leads=I,II`` selects leads by name.
"""

from __future__ import annotations

import numpy as np

from ..record import EcgRecord
from .base import DeviceInfo, DeviceSpec, register_device
from .paced import PacedDevice
from .url import DeviceUrl, ParamSpec


@register_device("playback")
class PlaybackDevice(PacedDevice):
    spec = DeviceSpec(
        kind="playback",
        description="a WFDB record replayed in real time × speed (playback://path/record.hea?speed=1)",
        transport="file",
        fs=None,
        channels=None,
        default_leads=None,
        params=(
            ParamSpec("speed", "float", 1.0, "replay speed (1 = real time)", minimum=0.01, maximum=10000.0),
            ParamSpec("loop", "bool", False, "start again at the end instead of ending the stream"),
            ParamSpec("leads", "leads", None, "leads to stream, selected by name (default: all)"),
        ),
        lead_off="not reported",
    )

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self._record: EcgRecord | None = None

    def _load(self) -> EcgRecord:
        if self._record is None:
            from ..wfdb_io import read_record

            leads = self.params.get("leads")
            self._record = read_record(self.url.target, leads=list(leads) if leads else None)
        return self._record

    @property
    def info(self) -> DeviceInfo:
        record = self._load()
        return DeviceInfo(kind="playback", url=self.url.text, source=self.url.target, leads=record.leads,
                          fs=record.fs, extra={"speed": self.speed, "loop": bool(self.params["loop"]),
                                               "record_samples": record.n_samples})

    def open(self) -> None:
        self._load()
        self._opened = True

    def close(self) -> None:
        self._opened = False
        self._started = False

    def _length(self) -> int | None:
        return None if self.params["loop"] else self._load().n_samples

    def _produce(self, start: int, n: int) -> np.ndarray:
        signal = self._load().signal
        total = signal.shape[1]
        positions = np.arange(start, start + n) % total
        return signal[:, positions].T
