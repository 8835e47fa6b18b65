"""SparkFun AD8232 single-lead monitor with its Arduino sketch: ASCII lines, ``!`` while a lead is off.

Each loop of the sketch prints ``analogRead(A0)`` (0..1023) or ``!`` (LO+ or LO- high) and a line end, throttled
only by the 9600-baud link (≈150-190 lines/s, uneven). The lines carry no time, so the host stamps them: lines of
one read are spread evenly back to the previous read (at most 1.5 line periods each, so a pause stays a pause),
then interpolated linearly onto a regular grid at ``fs``. Grid points more than ``maxgap`` s away from any line
are missing (NaN); points next to a ``!`` are NaN and flagged lead-off. Lines ``t_us,value`` (a timer-driven
sketch printing ``micros()``) use the device's own clock instead of the host's.

Scale (assumed: SparkFun board gain ≈ 1100, 10-bit ADC on a 5 V reference, output centred at mid-supply):
mV = (count − 512) × vref / 1024 / gain × 1000; set ``?gain=`` and ``?vref=`` to match your board.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from .base import DeviceSpec, register_device
from .serial_device import Rows, SerialDevice, empty_rows, leads_param, serial_params
from .url import DeviceUrl, ParamSpec

MAX_LINE = 40
ADC_MAX = 1023


def parse_line(line: bytes) -> tuple[float | None, float] | None:
    """``(device_time_s or None, value)`` of one line (value NaN for ``!``), or ``None`` if it is not a sample."""
    text = line.strip()
    if text == b"!":
        return None, math.nan
    t_us: int | None = None
    if b"," in text:
        head, _, text = text.partition(b",")
        if not head.isdigit() or len(head) > 10:
            return None
        t_us = int(head)
        text = text.strip()
        if text == b"!":
            return t_us * 1e-6, math.nan
    if not text.isdigit() or len(text) > 4:
        return None
    value = int(text)
    if value > ADC_MAX:
        return None
    return (t_us * 1e-6 if t_us is not None else None), float(value)


class LineGrid:
    """Host- or device-timed samples → a regular grid at ``fs`` by linear interpolation."""

    def __init__(self, fs: float, max_gap: float) -> None:
        self.fs = fs
        self.max_gap = max_gap
        self.t0: float | None = None
        self.next_k = 0  # next grid index to produce
        self.last: tuple[float, float] | None = None  # (time, value) of the previous line
        self.last_host: float | None = None
        self.rate = 150.0  # lines/s estimate (host-timed lines only)
        self.device_wraps = 0
        self.last_device_t: float | None = None

    def host_times(self, n: int, t_now: float) -> np.ndarray:
        """Arrival times for ``n`` lines read at ``t_now``."""
        period = 1.0 / self.rate
        if self.last_host is None:
            times = t_now - period * np.arange(n - 1, -1, -1)
        else:
            span = t_now - self.last_host
            if span <= 1.5 * n * period:
                times = self.last_host + span * np.arange(1, n + 1) / n
                if span > 0:
                    self.rate = 0.9 * self.rate + 0.1 * min(2000.0, max(10.0, n / span))
            else:  # a pause before these lines
                times = t_now - period * np.arange(n - 1, -1, -1)
        self.last_host = t_now
        return times

    def device_time(self, t: float) -> float:
        """Unwrap a 32-bit ``micros()`` clock."""
        if self.last_device_t is not None and t + self.device_wraps * 4294.967296 < self.last_device_t - 60:
            self.device_wraps += 1
        unwrapped = t + self.device_wraps * 4294.967296
        self.last_device_t = unwrapped
        return unwrapped

    def add(self, times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid indices, values and lead-off flags produced by new lines."""
        out_k: list[int] = []
        out_v: list[float] = []
        out_off: list[bool] = []
        for t, v in zip(times.tolist(), values.tolist(), strict=True):
            if self.t0 is None:
                self.t0 = t
                self.last = (t, v)
                out_k.append(0)
                out_v.append(v)
                out_off.append(math.isnan(v))
                self.next_k = 1
                continue
            assert self.last is not None
            t_prev, v_prev = self.last
            if t <= t_prev:
                t = t_prev + 1e-6
            k_end = int(math.floor((t - self.t0) * self.fs + 1e-9))
            for k in range(self.next_k, k_end + 1):
                tk = self.t0 + k / self.fs
                off = math.isnan(v) or math.isnan(v_prev)
                if off:
                    value = math.nan
                elif t - t_prev > self.max_gap:
                    value = math.nan  # no line close enough: missing, not invented
                else:
                    w = (tk - t_prev) / (t - t_prev)
                    value = v_prev + w * (v - v_prev)
                out_k.append(k)
                out_v.append(value)
                out_off.append(off)
            self.next_k = max(self.next_k, k_end + 1)
            self.last = (t, v)
        return np.asarray(out_k, dtype=np.int64), np.asarray(out_v, dtype=np.float64), np.asarray(out_off, dtype=bool)


@register_device("ad8232")
class Ad8232Device(SerialDevice):
    spec = DeviceSpec(
        kind="ad8232",
        description="SparkFun AD8232 Arduino sketch: ASCII analogRead lines, '!' = lead off, host-timestamped",
        transport="serial",
        fs=125.0,
        channels=1,
        default_leads=("I",),
        params=(
            ParamSpec("fs", "float", 125.0, "rate of the regular grid the lines are interpolated onto",
                      minimum=50.0, maximum=1000.0),
            ParamSpec("gain", "float", 1100.0, "analog gain of the board (assumed ~1100)", minimum=1.0),
            ParamSpec("vref", "float", 5.0, "ADC reference voltage of the Arduino (V)", minimum=0.5),
            ParamSpec("maxgap", "float", 0.1, "longest time between lines bridged by interpolation (s)",
                      minimum=0.01, maximum=2.0),
            leads_param(("I",)),
            *serial_params(9600),
        ),
        lead_off="'!' lines (the sketch prints '!' while LO+ or LO- is high); those samples are NaN",
        notes="No sample clock on the wire: timing comes from the host (or from 't_us,value' lines).",
    )
    wire_channels: ClassVar[int] = 1
    reports_lead_off: ClassVar[bool] = True

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self._line_buffer = bytearray()
        self.grid = LineGrid(self.sampling_rate(), float(self.params["maxgap"]))

    def mv_per_count(self) -> float:
        return float(self.params["vref"]) * 1000.0 / 1024.0 / float(self.params["gain"])

    def _reset_session(self) -> None:
        self._line_buffer.clear()

    def ingest(self, data: bytes, t: float) -> Rows:
        self._line_buffer += data
        *lines, rest = bytes(self._line_buffer).split(b"\n")
        if len(rest) > MAX_LINE:  # no line end in sight: noise
            self.stats.bad_lines += 1
            self.stats.skipped_bytes += len(rest)
            rest = b""
        self._line_buffer = bytearray(rest)
        parsed = []
        for line in lines:
            sample = parse_line(line)
            if sample is None:
                if line.strip():
                    self.stats.bad_lines += 1
                    self.stats.skipped_bytes += len(line) + 1
                continue
            parsed.append(sample)
        if not parsed:
            return empty_rows(1)
        self.stats.frames += len(parsed)
        values = np.array([v for _, v in parsed], dtype=np.float64)
        device_times = [d for d, _ in parsed]
        if all(d is not None for d in device_times):
            times = np.array([self.grid.device_time(float(d)) for d in device_times if d is not None])
        else:
            times = self.grid.host_times(len(parsed), t)
        k, v, off = self.grid.add(times, values)
        if k.size == 0:
            return empty_rows(1)
        mv = ((v - 512.0) * self.mv_per_count()).astype(np.float32)[:, None]
        return k, mv, off[:, None]
