"""The signal a simulator sends: a WFDB record or the synthetic generator, at the device's rate and leads.

A record is resampled to the device rate and mapped to the device's channels by lead name (case-insensitive;
``MLII`` counts as II; III, aVR, aVL, aVF derive from I and II, and I from II and III, when absent). A channel
whose lead the record cannot supply stays at 0 mV, with a warning. The record loops; the generator is endless
and adds 20 µV RMS of muscle noise unless told otherwise (real electrodes never give a perfectly flat line).
``block(start, n)`` gives any span at or after the oldest cached sample (the generator keeps the last minutes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from ...leads import derive_limb_leads, find_lead
from ...preprocess import resample_to
from ..url import UNUSED_CHANNEL

log = logging.getLogger(__name__)

LEAD_ALIASES = {"MLII": "II", "MLI": "I", "MLIII": "III", "ML2": "II"}
SYNTH_CACHE_S = 300.0
SIM_EMG_MV = 0.02  # muscle noise of a resting subject: hardware never sees a perfectly flat line


def _lead_rows(signal: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    rows: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        key = LEAD_ALIASES.get(name.strip().upper(), name.strip())
        if find_lead(list(rows), key) is None:
            rows[key] = signal[i]
    return rows


def _find(rows: dict[str, np.ndarray], lead: str) -> np.ndarray | None:
    names = list(rows)
    idx = find_lead(names, lead)
    if idx is not None:
        return rows[names[idx]]
    lead_i, lead_ii, lead_iii = (_direct(rows, n) for n in ("I", "II", "III"))
    if lead_i is None and lead_ii is not None and lead_iii is not None:
        lead_i = lead_ii - lead_iii
        if lead.upper() == "I":
            return lead_i
    if lead_ii is None and lead_i is not None and lead_iii is not None:
        lead_ii = lead_i + lead_iii
        if lead.upper() == "II":
            return lead_ii
    if lead_i is not None and lead_ii is not None:
        derived = derive_limb_leads(lead_i, lead_ii)
        for name, values in derived.items():
            if name.lower() == lead.lower():
                return values
    return None


def _direct(rows: dict[str, np.ndarray], lead: str) -> np.ndarray | None:
    names = list(rows)
    idx = find_lead(names, lead)
    return rows[names[idx]] if idx is not None else None


class WaveformSource:
    """Endless (channels, n) float32 mV for ``leads`` at ``fs``; '-' channels are flat."""

    def __init__(self, fs: float, leads: Sequence[str], record: str | os.PathLike[str] | None = None,
                 seed: int = 0, synth_options: dict[str, object] | None = None) -> None:
        self.fs = float(fs)
        self.leads = tuple(leads)
        self.record_path = record
        self._signal: np.ndarray | None = None
        self._stream = None
        self._cache = np.zeros((len(self.leads), 0), dtype=np.float32)
        self._cache_start = 0
        self._rows: np.ndarray | None = None
        if record is not None:
            self._signal = self._load_record(record)
        else:
            from ...leads import STANDARD_LEADS
            from ...synth import NoiseConfig, SynthConfig, SynthStream

            options = dict(synth_options or {})
            options.setdefault("noise", NoiseConfig(emg_mv=SIM_EMG_MV))
            config = SynthConfig(fs=self.fs, seed=seed, **options)  # type: ignore[arg-type]
            self._stream = SynthStream(config)
            rows = []
            for lead in self.leads:
                idx = find_lead(STANDARD_LEADS, lead) if lead != UNUSED_CHANNEL else None
                rows.append(-1 if idx is None else idx)
            self._rows = np.asarray(rows)

    def _load_record(self, path: str | os.PathLike[str]) -> np.ndarray:
        from ...wfdb_io import read_record

        record = read_record(path)
        signal = resample_to(np.nan_to_num(record.signal, nan=0.0), record.fs, self.fs)
        rows = _lead_rows(signal, record.leads)
        out = np.zeros((len(self.leads), signal.shape[1]), dtype=np.float32)
        missing = []
        for c, lead in enumerate(self.leads):
            if lead == UNUSED_CHANNEL:
                continue
            values = _find(rows, lead)
            if values is None:
                missing.append(lead)
            else:
                out[c] = values
        if missing:
            log.warning("%s has no lead %s (nor can derive it): sent as 0 mV", record.name, ", ".join(missing))
        return out

    def block(self, start: int, n: int) -> np.ndarray:
        """Samples ``start .. start + n - 1`` (indices count from the start of the simulation)."""
        if self._signal is not None:
            positions = np.arange(start, start + n) % self._signal.shape[1]
            return self._signal[:, positions]
        return self._synth_block(start, n)

    def _synth_block(self, start: int, n: int) -> np.ndarray:
        assert self._stream is not None and self._rows is not None
        cache_end = self._cache_start + self._cache.shape[1]
        if start < self._cache_start:
            raise ValueError(f"sample {start} is older than the generator cache (starts at {self._cache_start})")
        if start + n > cache_end:
            fresh = self._stream.read(start + n - cache_end)
            mapped = np.zeros((len(self.leads), fresh.shape[1]), dtype=np.float32)
            for c, row in enumerate(self._rows):
                if row >= 0:
                    mapped[c] = fresh[row]
            self._cache = np.concatenate([self._cache, mapped], axis=1)
            keep = int(SYNTH_CACHE_S * self.fs)
            if self._cache.shape[1] > keep:
                drop = self._cache.shape[1] - keep
                self._cache = self._cache[:, drop:]
                self._cache_start += drop
        offset = start - self._cache_start
        return self._cache[:, offset : offset + n]
