"""ProtoCentral ADS1292R OpenView sketch: a boot message, then 27-byte ``0A FA`` frames at 125 Hz.

The ECG field is 0 while a lead is off, as the sketch sends it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Simulator

BOOT_MESSAGE = b"Initiliziation is done\r\n"  # (sic) as the sketch prints it
PAYLOAD_LENGTH = 20
ADS1292R_GAIN = 12.0
ADS1292R_VREF = 2.42


def protocentral_frame(ecg: int, resp: int = 0, heart_rate: int = 0, resp_rate: int = 0) -> bytes:
    payload = bytearray(PAYLOAD_LENGTH)
    payload[0:2] = int(ecg).to_bytes(2, "little", signed=True)
    payload[2:4] = int(resp).to_bytes(2, "little", signed=True)
    payload[14] = resp_rate & 0xFF
    payload[16] = heart_rate & 0xFF
    return b"\x0a\xfa" + PAYLOAD_LENGTH.to_bytes(2, "little") + b"\x02" + bytes(payload) + b"\x00\x0b"


class Ads1292rSimulator(Simulator):
    kind = "ads1292r"
    default_leads: ClassVar[tuple[str, ...]] = ("I",)
    resets_on_open: ClassVar[bool] = True
    count_range: ClassVar[tuple[int, int]] = (-32768, 32767)

    @property
    def fs(self) -> float:
        return 125.0

    def mv_per_count(self) -> np.ndarray:
        return np.array([256.0 * ADS1292R_VREF / ADS1292R_GAIN / (2**23 - 1) * 1000.0])

    def on_boot(self) -> None:
        self.port.write(BOOT_MESSAGE)
        self.start_streaming()

    def encode(self, counts: np.ndarray, start: int, lead_off: np.ndarray) -> list[tuple[int, bytes]]:
        ecg = np.where(lead_off, 0, counts[0])
        return [(start + k, protocentral_frame(int(ecg[k]), heart_rate=72)) for k in range(counts.shape[1])]
