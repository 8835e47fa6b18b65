"""SparkFun AD8232 Arduino sketch: ``analogRead`` lines (or ``!`` while a lead is off) as fast as 9600 baud allows.

Each line takes its characters' time on the wire (10 bits per character at ``baud``) plus the sketch's
``delay(1)``, so the line rate is uneven (≈160 lines/s) and the values are sampled at those instants.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Simulator, SimulatorConfig

INTERNAL_FS = 1000.0  # the waveform is sampled at 1 kHz and read at each line's instant
AD8232_GAIN = 1100.0
AD8232_VREF = 5.0


class Ad8232Simulator(Simulator):
    kind = "ad8232"
    default_leads: ClassVar[tuple[str, ...]] = ("I",)
    resets_on_open: ClassVar[bool] = True
    count_range: ClassVar[tuple[int, int]] = (0, 1023)
    baseline: ClassVar[int] = 512

    def __init__(self, config: SimulatorConfig | None = None, baud: int = 9600) -> None:
        super().__init__(config)
        self.baud = baud
        self._next_line = 0.0  # position (at INTERNAL_FS) of the next line

    @property
    def fs(self) -> float:
        return INTERNAL_FS

    def mv_per_count(self) -> np.ndarray:
        return np.array([AD8232_VREF * 1000.0 / 1024.0 / AD8232_GAIN])

    def on_boot(self) -> None:
        self.start_streaming()
        self._next_line = float(self._emit_pos)

    def encode(self, counts: np.ndarray, start: int, lead_off: np.ndarray) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        n = counts.shape[1]
        while self._next_line < start + n:
            k = max(0, int(self._next_line) - start)
            line = b"!\r\n" if lead_off[k] else b"%d\r\n" % int(counts[0, k])
            out.append((start + k, line))
            self._next_line += (len(line) * 10.0 / self.baud + 0.001) * INTERNAL_FS
        return out
