"""ProtoCentral ADS1292R breakout / shield with its OpenView sketch, 125 Hz, one ECG channel.

Frame: ``0A FA | LEN (u16 LE) | TYPE | PAYLOAD[LEN] | 00 0B``; data frames have TYPE ``02``. The payload starts
with the ECG as int16 little-endian (the top 16 of the ADC's 24 bits, after the sketch's 40 Hz FIR); the fields
after it differ between sketch versions (LEN 9 or 20), so only the ECG is read. The frames carry no counter: lost
frames cannot be detected inside a session (contiguity with the previous frame replaces the counter check).

Lead-off: the sketch sends ECG = 0 while the chip's lead-off status is set. Exact zeros for more than 0.1 s
are flagged as lead-off (from the first zero of the run: zeros are held back, at most 0.1 s, until the run is long
enough or ends); shorter runs are ordinary samples. Scale (assumed from the library's registers:
CH2SET = 0x60 → PGA gain 12, VREF 2.42 V): mV = count × 256 × vref / gain / (2²³ − 1) × 1000.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import DeviceSpec, register_device
from .framing import Frame, FrameFormat
from .serial_device import Rows, SerialDevice, empty_rows, leads_param, serial_params
from .url import DeviceUrl, ParamSpec

PC_HEADER = b"\x0a\xfa"
PC_FOOTER = b"\x00\x0b"
PC_TYPE_DATA = 0x02
PC_MAX_PAYLOAD = 64
LEAD_OFF_ZEROS_S = 0.1  # exact zeros for longer than this are a lead-off run


class ProtoCentralFormat(FrameFormat):
    header = PC_HEADER
    max_length = 5 + PC_MAX_PAYLOAD + 2

    def length_at(self, buf: bytearray, i: int) -> int | None:
        if len(buf) < i + 5:
            return None
        payload = buf[i + 2] | (buf[i + 3] << 8)
        if not 2 <= payload <= PC_MAX_PAYLOAD or buf[i + 4] != PC_TYPE_DATA:
            return 0
        return 5 + payload + 2

    def is_valid(self, buf: bytearray, i: int, length: int) -> bool:
        return buf[i + length - 2] == 0x00 and buf[i + length - 1] == 0x0B


@register_device("ads1292r")
class Ads1292rDevice(SerialDevice):
    spec = DeviceSpec(
        kind="ads1292r",
        description="ProtoCentral ADS1292R with the OpenView sketch: 0A FA framing, ECG int16 LE, 125 Hz",
        transport="serial",
        fs=125.0,
        channels=1,
        default_leads=("I",),
        params=(
            ParamSpec("gain", "float", 12.0, "PGA gain of the ECG channel (CH2SET)", choices=(1.0, 2.0, 3.0, 4.0,
                                                                                                   6.0, 8.0, 12.0)),
            ParamSpec("vref", "float", 2.42, "ADC reference voltage (V)", minimum=0.5, maximum=5.0),
            leads_param(("I",)),
            *serial_params(57600),
        ),
        lead_off="runs of ECG = 0 longer than 0.1 s (the sketch zeroes the ECG on lead-off)",
        notes="No packet counter in this framing: gaps inside a session cannot be detected.",
    )
    wire_channels: ClassVar[int] = 1
    reports_lead_off: ClassVar[bool] = True

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self._zero_run = 0
        self._held: list[tuple[int, float]] = []  # zeros that may turn out to be a lead-off run
        self._min_run = int(LEAD_OFF_ZEROS_S * self.sampling_rate()) + 1

    def frame_format(self) -> FrameFormat:
        return ProtoCentralFormat()

    def mv_per_count(self) -> float:
        return 256.0 * float(self.params["vref"]) / float(self.params["gain"]) / (2**23 - 1) * 1000.0

    def _decode(self, frames: list[Frame]) -> tuple[np.ndarray, np.ndarray | None]:
        counts = np.fromiter(
            (int.from_bytes(f.data[5:7], "little", signed=True) for f in frames), dtype=np.int32, count=len(frames)
        )
        return (counts * self.mv_per_count()).astype(np.float32)[:, None], None

    def ingest(self, data: bytes, t: float) -> Rows:
        indices, values, _ = super().ingest(data, t)
        out_index: list[int] = []
        out_value: list[float] = []
        out_off: list[bool] = []
        for index, value in zip(indices.tolist(), values[:, 0].tolist(), strict=True):
            if value == 0.0:
                self._zero_run += 1
                self._held.append((index, value))
                if self._zero_run >= self._min_run:  # a lead-off run: flag it all, from its first zero
                    for held_index, held_value in self._held:
                        out_index.append(held_index)
                        out_value.append(held_value)
                        out_off.append(True)
                    self._held.clear()
                continue
            for held_index, held_value in self._held:  # a few zeros: ordinary samples
                out_index.append(held_index)
                out_value.append(held_value)
                out_off.append(False)
            self._held.clear()
            self._zero_run = 0
            out_index.append(index)
            out_value.append(value)
            out_off.append(False)
        if not out_index:
            return empty_rows(1)
        return (np.asarray(out_index, dtype=np.int64), np.asarray(out_value, dtype=np.float32)[:, None],
                np.asarray(out_off, dtype=bool)[:, None])
