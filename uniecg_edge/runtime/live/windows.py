"""From the device's channels to analysis windows: which leads go in, and 10-s windows every hop.

``LeadPlan`` picks the device channels that are standard leads (a Daisy's CH9-CH16 stay in the recording only)
and says whether the model can use them: it needs I, II and V1-V6 (III, aVR, aVL, aVF derive exactly from I and
II). ``WindowMaker`` keeps a ring buffer (``dsp.SlidingWindows``) of those channels, plus the device's lead-off
flags where it reports them, and returns each window as an ``EcgRecord`` with the limb leads completed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...devices.recorder import with_derived_leads
from ...dsp import SlidingWindows
from ...errors import LeadError
from ...leads import STANDARD_LEADS, canonical_name, find_lead
from ...record import EcgRecord

log = logging.getLogger(__name__)

MODEL_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")  # the rest derive from I and II


@dataclass(frozen=True)
class LeadPlan:
    """Which device channels feed the analysis (``channels``, named ``leads``), and what is left out."""

    device_leads: tuple[str, ...]
    channels: tuple[int, ...]
    leads: tuple[str, ...]
    ignored: tuple[str, ...]
    missing_for_model: tuple[str, ...]

    @property
    def model_ready(self) -> bool:
        return not self.missing_for_model

    @classmethod
    def from_leads(cls, device_leads: Sequence[str], *, source: str = "device") -> LeadPlan:
        names = tuple(canonical_name(n) for n in device_leads)
        channels: list[int] = []
        leads: list[str] = []
        ignored: list[str] = []
        for i, name in enumerate(names):
            if find_lead(STANDARD_LEADS, name) is not None and find_lead(leads, name) is None:
                channels.append(i)
                leads.append(name)
            else:
                ignored.append(name)
        if not leads:
            raise LeadError(f"{source}: no standard ECG lead among its channels ({', '.join(names)})")
        missing = tuple(lead for lead in MODEL_LEADS if find_lead(leads, lead) is None)
        return cls(names, tuple(channels), tuple(leads), tuple(ignored), missing)

    def require_model_leads(self, source: str) -> None:
        """Raise ``LeadError`` (one line) when the model cannot use this lead set."""
        if self.missing_for_model:
            raise LeadError(
                f"{source}: leads {', '.join(self.leads)} cannot feed the model: it needs I, II and V1-V6 "
                f"(missing {', '.join(self.missing_for_model)}; map channels with ?leads=)")


@dataclass
class LiveWindow:
    """One analysis window: the record (standard leads, limb leads completed) and where it sits in the stream."""

    index: int  # 0, 1, 2, … in the order windows completed
    start_index: int  # absolute device sample index of the first sample
    end_index: int  # one past the last
    fs: float
    record: EcgRecord
    completed_t: float  # time.time() when the sample that completed the window was read from the device
    lead_off_fraction: dict[str, float] = field(default_factory=dict)  # device-flagged, per lead
    derived: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        return {
            "index": self.index,
            "start_index": self.start_index,
            "end_index": self.end_index,
            "start_s": round(self.start_index / self.fs, 4),
            "end_s": round(self.end_index / self.fs, 4),
            "derived_leads": list(self.derived),
        }


class WindowMaker:
    """Cuts the analysis channels of a stream into ``window_s`` windows every ``hop_s``."""

    def __init__(self, plan: LeadPlan, fs: float, *, window_s: float, hop_s: float, with_lead_off: bool,
                 name: str = "live", meta: dict[str, object] | None = None) -> None:
        self.plan = plan
        self.fs = float(fs)
        self.with_lead_off = with_lead_off
        self.name = name
        self.meta = dict(meta or {})
        self._channels = np.asarray(plan.channels, dtype=np.intp)
        n = len(plan.channels) * (2 if with_lead_off else 1)
        self._windows = SlidingWindows(self.fs, n, window_s=window_s, hop_s=hop_s)
        self.count = 0

    @property
    def window_samples(self) -> int:
        return self._windows.window

    def push(self, start: int, samples: np.ndarray, lead_off: np.ndarray | None, t_host: float) -> list[LiveWindow]:
        """Add rows ``start ..`` of the device stream; return the windows they completed (oldest first)."""
        block = samples[:, self._channels].T
        if self.with_lead_off:
            flags = (lead_off[:, self._channels].T if lead_off is not None
                     else np.zeros(block.shape, dtype=bool)).astype(np.float32)
            block = np.concatenate([block, flags])
        out = []
        for window in self._windows.push(block, start):
            out.append(self._make(window.start_index, window.data, t_host))
        return out

    def _make(self, start: int, data: np.ndarray, t_host: float) -> LiveWindow:
        k = len(self.plan.leads)
        signal, flags = data[:k], (data[k:] if self.with_lead_off else None)
        signal, leads, derived = with_derived_leads(signal, self.plan.leads)
        index = self.count
        self.count += 1
        end = start + data.shape[1]
        meta = {**self.meta, "window_index": index, "start_index": start, "end_index": end}
        record = EcgRecord(signal, self.fs, leads, name=f"{self.name}-w{index:06d}", meta=meta)
        lead_off = {}
        if flags is not None:
            off = np.nan_to_num(flags) > 0.5
            lead_off = {lead: float(off[i].mean()) for i, lead in enumerate(self.plan.leads)}
            i_idx, ii_idx = find_lead(self.plan.leads, "I"), find_lead(self.plan.leads, "II")
            if derived and i_idx is not None and ii_idx is not None:  # a derived lead is off when I or II is
                either = float((off[i_idx] | off[ii_idx]).mean())
                lead_off.update({lead: either for lead in derived})
        return LiveWindow(index, start, end, self.fs, record, t_host, lead_off, derived)
