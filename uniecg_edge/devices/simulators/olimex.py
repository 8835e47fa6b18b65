"""Olimex SHIELD-EKG-EMG demo sketch: 17-byte P2 packets at 125 Hz from reset, no commands."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..olimex import OLIMEX_BASELINE, OLIMEX_CHANNELS, OLIMEX_PACKET
from .base import Simulator, SimulatorConfig

OLIMEX_GAIN = 2848.0
OLIMEX_VREF = 5.0


def olimex_packets(counts: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """(n, 17) uint8 packets from (n, 6) counts 0..1023 and (n,) counters."""
    n = counts.shape[0]
    packets = np.zeros((n, OLIMEX_PACKET), dtype=np.uint8)
    packets[:, 0] = 0xA5
    packets[:, 1] = 0x5A
    packets[:, 2] = 2
    packets[:, 3] = counters.astype(np.int64) % 256
    values = counts.astype(np.int64)
    packets[:, 4:16:2] = (values >> 8) & 0xFF
    packets[:, 5:16:2] = values & 0xFF
    return packets


class OlimexSimulator(Simulator):
    kind = "olimex"
    default_leads: ClassVar[tuple[str, ...]] = ("I", "-", "-", "-", "-", "-")
    resets_on_open: ClassVar[bool] = True
    count_range: ClassVar[tuple[int, int]] = (0, 1023)
    baseline: ClassVar[int] = OLIMEX_BASELINE

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__(config)
        self.counter = 0

    @property
    def fs(self) -> float:
        return 125.0

    def mv_per_count(self) -> np.ndarray:
        return np.full(OLIMEX_CHANNELS, OLIMEX_VREF * 1000.0 / 1024.0 / OLIMEX_GAIN)

    def reset_device(self) -> None:
        super().reset_device()
        self.counter = 0

    def encode(self, counts: np.ndarray, start: int, lead_off: np.ndarray) -> list[tuple[int, bytes]]:
        n = counts.shape[1]
        counters = self.counter + np.arange(n)
        self.counter = int(counters[-1] + 1) % 256
        packets = olimex_packets(counts[:OLIMEX_CHANNELS].T, counters)
        return [(start + k, packets[k].tobytes()) for k in range(n)]
