"""Acquire a fixed amount of signal from a device into an ``EcgRecord`` (what ``uniecg-edge record`` does).

The amount is signal time: ``seconds × fs`` samples counted by index, so missing samples count (as NaN) and a
faster-than-real-time source finishes sooner. The record keeps the device's rate, mV, no filtering, the mapped lead
names, and III, aVR, aVL, aVF derived when I and II are present (an exact relation, computed sample by sample,
so a missing I or II sample gives missing derived samples).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DeviceError
from ..leads import LIMB_LEADS_DERIVED, MAX_LEADS, derive_limb_leads, find_lead
from ..record import EcgRecord
from .base import Device, DeviceInfo

log = logging.getLogger(__name__)


@dataclass
class Acquisition:
    """A recording and how it went."""

    record: EcgRecord
    info: DeviceInfo
    stats: dict[str, int]
    derived: tuple[str, ...]
    interrupted: bool = False
    lead_off_samples: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        signal = self.record.signal
        return {
            "record": self.record.name,
            "fs": self.record.fs,
            "leads": list(self.record.leads),
            "derived": list(self.derived),
            "samples": self.record.n_samples,
            "duration_s": self.record.duration_s,
            "missing_samples": int(np.isnan(signal).all(axis=0).sum()),
            "lead_off_samples": self.lead_off_samples,
            "interrupted": self.interrupted,
            "device": self.info.to_dict(),
            "stats": self.stats,
        }


def with_derived_leads(
    signal: np.ndarray, leads: tuple[str, ...]
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Append III, aVR, aVL, aVF (those absent) when I and II are present and the lead count allows it."""
    i, ii = find_lead(leads, "I"), find_lead(leads, "II")
    if i is None or ii is None:
        return signal, leads, ()
    missing = [name for name in LIMB_LEADS_DERIVED if find_lead(leads, name) is None]
    if len(leads) + len(missing) > MAX_LEADS:
        log.warning("not deriving %s: %d leads already (at most %d in a record)", ", ".join(missing), len(leads),
                    MAX_LEADS)
        return signal, leads, ()
    derived = derive_limb_leads(signal[i], signal[ii])
    rows = [derived[name] for name in missing]
    if not rows:
        return signal, leads, ()
    return np.vstack([signal, *rows]).astype(np.float32), leads + tuple(missing), tuple(missing)


def acquire(device: Device, seconds: float, name: str = "record") -> Acquisition:
    """Open (if needed), start, read ``seconds`` of signal time, stop and close ``device``.

    Ctrl-C stops early and keeps what was read (``interrupted``). A finite source that ends early gives a shorter
    record. Raises ``DeviceError`` if no sample at all arrived.
    """
    interrupted = False
    blocks: list[np.ndarray] = []
    flags: list[np.ndarray] = []
    with device:
        info = device.info
        target = max(1, int(round(seconds * info.fs)))
        device.start()
        got = 0
        try:
            while got < target:
                chunk = device.read(timeout=0.5)
                if chunk is None:
                    break
                if chunk.n:
                    blocks.append(chunk.samples)
                    if chunk.lead_off is not None:
                        flags.append(chunk.lead_off)
                    got += chunk.n
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted: keeping the %.1f s acquired", got / info.fs)
        info = device.info
    if not blocks:
        raise DeviceError(f"{info.url}: no samples acquired")
    signal = np.concatenate(blocks)[:target].T.astype(np.float32)
    lead_off: dict[str, int] = {}
    if flags:
        off = np.concatenate(flags)[:target]
        lead_off = {lead: int(off[:, c].sum()) for c, lead in enumerate(info.leads)}
    signal, leads, derived = with_derived_leads(signal, info.leads)
    meta = {"device": info.url, "source": info.source}
    record = EcgRecord(signal=signal, fs=info.fs, leads=leads, name=name, meta=meta)
    return Acquisition(record, info, device.stats.to_dict(), derived, interrupted, lead_off)
