"""Global measurements of an ECG: HR, RR, PR, QRS, QT, QTc (Bazett and Fridericia), frontal axis.

Formulas (acquisition-facts §5.3): HR = 60 / RR; PR = QRS onset - P onset; QRS = QRS offset - QRS onset;
QT = T end - QRS onset; QTc Bazett = QT / sqrt(RR), Fridericia = QT / cbrt(RR) (RR in seconds); frontal axis
theta = atan2(2 * aVF / sqrt(3), I) on the net QRS amplitudes (R minus S, from the isoelectric level) of the median
beats, since I = |H| cos(theta) and aVF = (sqrt(3) / 2) |H| sin(theta). aVF is derived from I and II when the record
lacks it. Every value that cannot be measured is ``None``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..leads import find_lead
from ..report import Measurements
from .delineate import Delineation, DelineationConfig, MedianBeats, delineate, isoelectric_level, median_beats
from .filters import FilterConfig, filter_zero_phase

__all__ = ["MeasurementSet", "measure", "rr_intervals_ms", "frontal_axis_deg", "qtc_ms"]

DEFAULT_FILTERS = FilterConfig()
DEFAULT_DELINEATION = DelineationConfig()
QTC_FORMULAS = {
    "bazett": lambda qt_ms, rr_s: qt_ms / math.sqrt(rr_s),
    "fridericia": lambda qt_ms, rr_s: qt_ms / rr_s ** (1.0 / 3.0),
}


@dataclass
class MeasurementSet:
    """Everything ``measure`` found; ``to_measurements`` gives the report's fixed keys (QTc by Bazett)."""

    r_peaks: list[int]
    heart_rate_bpm: float | None = None
    rr_ms: float | None = None
    rr_intervals_ms: list[float] = field(default_factory=list)
    pr_ms: float | None = None
    qrs_ms: float | None = None
    qt_ms: float | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    axis_deg: float | None = None
    p_waves: bool | None = None  # P waves found in the median beats (None: no delineation possible)
    delineation: Delineation | None = None

    def to_measurements(self) -> Measurements:
        return Measurements(
            heart_rate_bpm=_round(self.heart_rate_bpm, 1), rr_ms=_round(self.rr_ms, 1), pr_ms=_round(self.pr_ms, 1),
            qrs_ms=_round(self.qrs_ms, 1), qt_ms=_round(self.qt_ms, 1), qtc_ms=_round(self.qtc_bazett_ms, 1),
            axis_deg=_round(self.axis_deg, 1), r_peaks=[int(p) for p in self.r_peaks],
        )

    def details(self) -> dict[str, Any]:
        """Extra figures for the report: both QTc formulas and the per-lead fiducials."""
        out: dict[str, Any] = {
            "qtc_bazett_ms": _round(self.qtc_bazett_ms, 1),
            "qtc_fridericia_ms": _round(self.qtc_fridericia_ms, 1),
            "p_waves": self.p_waves,
        }
        if self.delineation is not None:
            d = asdict(self.delineation)
            out["delineation"] = {k: (_round(v, 1) if isinstance(v, float) else v) for k, v in d.items()}
        return out


def rr_intervals_ms(r_peaks: np.ndarray, fs: float) -> np.ndarray:
    return np.diff(np.asarray(r_peaks, dtype=np.float64)) * 1000.0 / fs


def qtc_ms(qt: float | None, rr_s: float | None, formula: str = "bazett") -> float | None:
    """QT corrected for rate by ``formula`` ('bazett' or 'fridericia'); None when QT or RR is unknown."""
    if qt is None or rr_s is None or not rr_s > 0:
        return None
    return float(QTC_FORMULAS[formula](qt, rr_s))


def frontal_axis_deg(net_i: float, net_avf: float) -> float | None:
    """theta = atan2(2 aVF / sqrt(3), I) in degrees (-180, 180]; None when both amplitudes are zero."""
    if net_i == 0 and net_avf == 0:
        return None
    return float(math.degrees(math.atan2(2.0 * net_avf / math.sqrt(3.0), net_i)))


def measure(signal: np.ndarray, fs: float, leads: tuple[str, ...], r_peaks: np.ndarray,
            filters: FilterConfig | None = DEFAULT_FILTERS,
            config: DelineationConfig = DEFAULT_DELINEATION) -> MeasurementSet:
    """All measurements of a (leads, samples) record in mV at ``fs`` with its R peaks (sample indices).

    ``filters`` (zero-phase, default 0.5-40 Hz with a 50 Hz notch) condition the signal for delineation;
    ``None`` uses it as is.
    """
    x = np.asarray(signal, dtype=np.float64)
    peaks = np.asarray(r_peaks, dtype=np.int64)
    out = MeasurementSet(r_peaks=[int(p) for p in peaks])
    rr = rr_intervals_ms(peaks, fs)
    out.rr_intervals_ms = [float(v) for v in rr]
    if rr.size:
        out.rr_ms = float(np.mean(rr))
        out.heart_rate_bpm = 60000.0 / out.rr_ms
    clean = filter_zero_phase(x, fs, filters) if filters is not None else x
    med = median_beats(clean, fs, peaks, config)
    if med is None:
        return out
    d = delineate(med, tuple(leads), config)
    out.delineation = d
    out.p_waves = d.p_onset_ms is not None
    if d.qrs_onset_ms is not None and d.qrs_offset_ms is not None:
        out.qrs_ms = d.qrs_offset_ms - d.qrs_onset_ms
        if d.p_onset_ms is not None:
            out.pr_ms = d.qrs_onset_ms - d.p_onset_ms
        if d.t_end_ms is not None:
            out.qt_ms = d.t_end_ms - d.qrs_onset_ms
            rr_s = out.rr_ms / 1000.0 if out.rr_ms else None
            out.qtc_bazett_ms = qtc_ms(out.qt_ms, rr_s, "bazett")
            out.qtc_fridericia_ms = qtc_ms(out.qt_ms, rr_s, "fridericia")
        out.axis_deg = _axis(med, tuple(leads), d)
    return out


def _axis(med: MedianBeats, leads: tuple[str, ...], d: Delineation) -> float | None:
    """Frontal axis from the net QRS amplitudes of I and aVF (aVF from II when absent); None without them."""
    i_idx, avf_idx, ii_idx = find_lead(leads, "I"), find_lead(leads, "aVF"), find_lead(leads, "II")
    if i_idx is None or (avf_idx is None and ii_idx is None):
        return None
    assert d.qrs_onset_ms is not None and d.qrs_offset_ms is not None
    fs, r = med.fs, med.r_index
    on = r + int(round(d.qrs_onset_ms * fs / 1000.0))
    off = r + int(round(d.qrs_offset_ms * fs / 1000.0))
    lead_i = med.beats[i_idx]
    avf = med.beats[avf_idx] if avf_idx is not None else med.beats[ii_idx] - lead_i / 2.0
    net = []
    for beat in (lead_i, avf):
        if not np.isfinite(beat[on: off + 1]).all():
            return None
        seg = beat[on: off + 1] - isoelectric_level(beat, on, fs)
        net.append(float(seg.max() + seg.min()))
    return frontal_axis_deg(net[0], net[1])


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)
