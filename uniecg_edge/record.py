"""``EcgRecord``: the one signal type passed between layers (float32 mV, leads × samples)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import RecordError
from .leads import MAX_LEADS

MIN_FS_HZ = 50.0
MAX_FS_HZ = 20_000.0


@dataclass
class EcgRecord:
    """An ECG: ``signal`` is (n_leads, n_samples) float32 in mV, NaN where a sample is missing.

    ``meta`` holds what the source says about the patient (``age``, ``sex``, ``dx``) and anything else.
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    name: str = "record"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float32)
        self.leads = tuple(self.leads)
        if self.signal.ndim != 2:
            raise RecordError(f"{self.name}: signal must be 2-D (leads, samples), got shape {self.signal.shape}")
        n_leads, n_samples = self.signal.shape
        if n_leads != len(self.leads):
            raise RecordError(f"{self.name}: {n_leads} signal rows but {len(self.leads)} lead names")
        if not 1 <= n_leads <= MAX_LEADS:
            raise RecordError(f"{self.name}: {n_leads} leads; 1 to {MAX_LEADS} are supported")
        if n_samples == 0:
            raise RecordError(f"{self.name}: the record holds no samples")
        if not (isinstance(self.fs, (int, float)) and math.isfinite(self.fs) and MIN_FS_HZ <= self.fs <= MAX_FS_HZ):
            raise RecordError(
                f"{self.name}: impossible sampling rate {self.fs!r} Hz (supported: {MIN_FS_HZ:g} to {MAX_FS_HZ:g} Hz)"
            )
        self.fs = float(self.fs)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """One lead by name, case-insensitively."""
        from .leads import find_lead

        idx = find_lead(self.leads, name)
        if idx is None:
            from .errors import LeadError

            raise LeadError(f"{self.name}: no lead {name!r} (has: {', '.join(self.leads)})")
        return self.signal[idx]
