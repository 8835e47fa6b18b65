"""The signal layer (numpy and scipy only): streaming filters, resampling, lead derivation, ring buffer and
windows, per-lead quality, R-peak detection for streams and whole records, measurements, rhythm, critical rules.

``analyze_record(record) -> Report`` runs the whole path on one record or live window.
"""

from __future__ import annotations

from .analysis import AnalysisConfig, analyze_record
from .critical import CRITICAL_RULES, CriticalConfig, evaluate_critical
from .delineate import Delineation, DelineationConfig, delineate, median_beats
from .derive import complete_limb_leads, derive_standard_12
from .filters import (
    BandPassFilter,
    FilterChain,
    FilterConfig,
    HighPassFilter,
    LowPassFilter,
    NotchFilter,
    StreamingSosFilter,
    filter_zero_phase,
)
from .measure import MeasurementSet, frontal_axis_deg, measure, qtc_ms
from .qrs import QrsDetectorConfig, StreamingRPeakDetector, detect_r_peaks
from .quality import QUALITY_CHECKS, QualityConfig, assess_quality
from .resample import StreamingResampler, resample_block
from .rhythm import RHYTHM_RULES, RhythmConfig, classify_rhythm, rr_irregularity
from .ringbuffer import RingBuffer, SlidingWindows, Window

__all__ = [
    "AnalysisConfig", "analyze_record",
    "CRITICAL_RULES", "CriticalConfig", "evaluate_critical",
    "Delineation", "DelineationConfig", "delineate", "median_beats",
    "complete_limb_leads", "derive_standard_12",
    "BandPassFilter", "FilterChain", "FilterConfig", "HighPassFilter", "LowPassFilter", "NotchFilter",
    "StreamingSosFilter", "filter_zero_phase",
    "MeasurementSet", "frontal_axis_deg", "measure", "qtc_ms",
    "QrsDetectorConfig", "StreamingRPeakDetector", "detect_r_peaks",
    "QUALITY_CHECKS", "QualityConfig", "assess_quality",
    "StreamingResampler", "resample_block",
    "RHYTHM_RULES", "RhythmConfig", "classify_rhythm", "rr_irregularity",
    "RingBuffer", "SlidingWindows", "Window",
]
