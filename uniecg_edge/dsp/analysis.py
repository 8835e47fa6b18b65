"""``analyze_record``: the whole signal path for one record (or one live window) into a ``Report``.

quality per lead -> R peaks on the leads that hold signal (all leads combined) -> measurements on median beats
(limb leads derived from I and II where missing, for the axis) -> rhythm -> critical rules. Nothing here needs a
model; it runs on numpy and scipy only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from ..record import EcgRecord
from ..report import Report
from .critical import CriticalConfig, CriticalInput, evaluate_critical
from .delineate import DelineationConfig
from .derive import complete_limb_leads
from .filters import FilterConfig
from .measure import MeasurementSet, measure
from .qrs import QrsDetectorConfig, detect_r_peaks
from .quality import QualityConfig, assess_quality, good_leads
from .rhythm import RhythmConfig, RhythmInput, classify_rhythm

__all__ = ["AnalysisConfig", "analyze_record"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisConfig:
    """Every setting of the signal path; saved with what it produced (``Report.provenance['dsp_config']``)."""

    mains_hz: float | None = None  # notch frequency; None: the one quality found stronger (50 if neither)
    filters: FilterConfig = field(default_factory=FilterConfig)
    qrs: QrsDetectorConfig = field(default_factory=QrsDetectorConfig)
    delineation: DelineationConfig = field(default_factory=DelineationConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    rhythm: RhythmConfig = field(default_factory=RhythmConfig)
    critical: CriticalConfig = field(default_factory=CriticalConfig)


def analyze_record(record: EcgRecord, config: AnalysisConfig = AnalysisConfig()) -> Report:
    """Quality, R peaks, measurements, rhythm and critical findings of ``record`` (any length, any leads)."""
    signal = record.signal
    leads = tuple(record.leads)
    quality = assess_quality(signal, record.fs, leads, config.quality)
    usable_idx = good_leads(quality, leads)
    report = Report(record=record.name, fs=record.fs, leads=list(leads), duration_s=round(record.duration_s, 3),
                    quality=quality)
    report.provenance["dsp_config"] = asdict(config)
    if not usable_idx:
        log.info("%s: no usable lead; no measurements", record.name)
        report.measurements.r_peaks = []
        return report
    detect_signal = signal[usable_idx]
    r_peaks = detect_r_peaks(detect_signal, record.fs, config.qrs)
    full, full_leads, _derived = complete_limb_leads(signal, leads, usable=[leads[i] for i in usable_idx])
    filters = FilterConfig(**{**asdict(config.filters), "notch_hz": _notch(quality, config)})
    measured = measure(full, record.fs, full_leads, r_peaks, filters, config.delineation)
    report.measurements = measured.to_measurements()
    report.extra["measurement_details"] = measured.details()
    report.rhythm = classify_rhythm(
        RhythmInput(np.asarray(measured.rr_intervals_ms), measured.heart_rate_bpm, measured.p_waves), config.rhythm)
    present = np.isfinite(detect_signal).any(axis=0)
    report.critical = evaluate_critical(
        CriticalInput(measured, record.fs, record.n_samples, [leads[i] for i in usable_idx], present,
                      quality["usable"], _t_end_leads(measured)),
        config.critical,
    )
    return report


def _notch(quality: dict, config: AnalysisConfig) -> float | None:
    if config.filters.notch_hz is None:
        return None
    if config.mains_hz is not None:
        return config.mains_hz
    found = [q.get("mains_hz") for q in quality["leads"].values() if "mains_noise" in q["flags"]]
    return float(found[0]) if found and found[0] else config.filters.notch_hz


def _t_end_leads(measured: MeasurementSet) -> list[str]:
    return sorted(measured.delineation.t_end_by_lead) if measured.delineation is not None else []
