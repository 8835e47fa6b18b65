"""Olimex SHIELD-EKG-EMG on an Arduino-class board (ModularEEG packet format v2, "P2"), 125 Hz.

Packet (17 bytes): ``A5 5A``, version ``02``, counter (u8), 6 × uint16 big-endian (10-bit ADC, 0..1023), switches
(PD5..PD2 in bits 3..0). The board streams from power-up (no commands). A frame is valid only with version 2,
every value ≤ 1023 and the top switch bits clear, which rejects the false ``A5 5A`` syncs found in real captures.
Real captures also repeat counters; a repeat is taken as a new sample (the packets are distinct transmissions at
the sample rate), counted in ``stats.repeated_counters``.

Scale (assumed, from Olimex's product description): total gain ≈ 2848 (10 × ~80 × 3.56), 10-bit ADC on a 5 V
reference, baseline 512: mV = (count − 512) × vref / 1024 / gain × 1000. Set ``?gain=`` and ``?vref=`` to match.
Channel 1 carries the ECG of the first shield; stacked shields use channels 2-6 (map them with ``?leads=``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import DeviceSpec, register_device
from .framing import Frame, FrameFormat
from .serial_device import SerialDevice, leads_param, serial_params
from .url import ParamSpec

OLIMEX_PACKET = 17
OLIMEX_CHANNELS = 6
OLIMEX_BASELINE = 512


class OlimexFormat(FrameFormat):
    header = b"\xa5\x5a"
    max_length = OLIMEX_PACKET
    counter_modulus = 256
    repeats_allowed = True

    def length_at(self, buf: bytearray, i: int) -> int | None:
        return OLIMEX_PACKET

    def is_valid(self, buf: bytearray, i: int, length: int) -> bool:
        if buf[i + 2] != 2 or buf[i + 16] & 0xF0:
            return False
        # 10-bit values: every high byte ≤ 3
        return all(buf[i + k] <= 3 for k in range(4, 16, 2))

    def counter(self, buf: bytearray, i: int) -> int | None:
        return buf[i + 3]


def decode_olimex_counts(frames: list[Frame]) -> np.ndarray:
    """(n, 6) int32 ADC counts."""
    raw = np.frombuffer(b"".join(f.data for f in frames), dtype=np.uint8).reshape(len(frames), OLIMEX_PACKET)
    pairs = raw[:, 4:16].reshape(len(frames), OLIMEX_CHANNELS, 2).astype(np.int32)
    return (pairs[..., 0] << 8) | pairs[..., 1]


@register_device("olimex")
class OlimexDevice(SerialDevice):
    spec = DeviceSpec(
        kind="olimex",
        description="Olimex SHIELD-EKG-EMG (ModularEEG P2 packets, 17 bytes, 10-bit ADC), streams from power-up",
        transport="serial",
        fs=125.0,
        channels=OLIMEX_CHANNELS,
        default_leads=("I", "-", "-", "-", "-", "-"),
        params=(
            ParamSpec("fs", "float", 125.0, "sample rate of the sketch (125 Hz in Olimex's demo code)",
                      minimum=50.0, maximum=1000.0),
            ParamSpec("gain", "float", 2848.0, "total analog gain of the shield (assumed ~2848)", minimum=1.0),
            ParamSpec("vref", "float", 5.0, "ADC reference voltage of the Arduino board (V)", minimum=0.5),
            leads_param(("I", "-", "-", "-", "-", "-")),
            *serial_params(115200),
        ),
        lead_off="not reported",
        notes="Absolute mV scale depends on the shield's trimmer: gain 2848 is the vendor's nominal value.",
    )
    wire_channels: ClassVar[int] = OLIMEX_CHANNELS

    def frame_format(self) -> FrameFormat:
        return OlimexFormat()

    def mv_per_count(self) -> float:
        return float(self.params["vref"]) * 1000.0 / 1024.0 / float(self.params["gain"])

    def _decode(self, frames: list[Frame]) -> tuple[np.ndarray, np.ndarray | None]:
        counts = decode_olimex_counts(frames)
        return ((counts - OLIMEX_BASELINE) * self.mv_per_count()).astype(np.float32), None
