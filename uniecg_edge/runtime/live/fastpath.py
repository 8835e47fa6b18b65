"""The fast path every window takes at once: quality gate, DSP measurements and critical rules (no model).

``analyze_window`` runs ``dsp.analyze_record`` on the window and adds what only the live stream knows: the
device's own lead-off flags (a lead flagged off for at least ``lead_off_fraction`` of the window gets the
``lead_off`` flag, and the window's usability is re-decided) and the window's place in the stream.
"""

from __future__ import annotations

import time

from ...dsp import AnalysisConfig, analyze_record
from ...dsp.quality import DISQUALIFYING
from ...report import Report
from .windows import MODEL_LEADS, LiveWindow

DEFAULT_ANALYSIS = AnalysisConfig()


def analyze_window(window: LiveWindow, config: AnalysisConfig = DEFAULT_ANALYSIS,
                   lead_off_fraction: float = 0.5) -> Report:
    """The DSP report of ``window`` (quality, measurements, rhythm, critical), with device lead-off merged."""
    start = time.perf_counter()
    report = analyze_record(window.record, config)
    quality = report.quality or {"usable": False, "leads": {}}
    flagged = [lead for lead, fraction in window.lead_off_fraction.items() if fraction >= lead_off_fraction]
    for lead, fraction in window.lead_off_fraction.items():
        entry = quality["leads"].get(lead)
        if entry is None:
            continue
        entry["device_lead_off_fraction"] = round(fraction, 4)
        if lead in flagged and "lead_off" not in entry["flags"]:
            entry["flags"].append("lead_off")
    if flagged:
        quality["usable"] = any(not set(entry["flags"]) & DISQUALIFYING for entry in quality["leads"].values())
        if not quality["usable"]:
            report.critical = []  # critical rules never fire on an unusable window (a lead-off is no asystole)
    report.quality = quality
    report.extra["window"] = window.describe()
    report.extra["latency_s"] = {"dsp": round(time.perf_counter() - start, 6)}
    return report


def quality_gate(report: Report) -> tuple[bool, str | None]:
    """Whether the model may interpret the window, and if not why.

    The window must be usable (``dsp.quality``: a lead free of lead-off, flat and railed), leads I and II must be
    (six of the model's twelve leads derive from them), and so must at least half of the model's eight leads.
    """
    quality = report.quality or {}
    if not quality.get("usable"):
        return False, "no usable lead"
    leads = quality.get("leads", {})
    bad = [lead for lead in MODEL_LEADS if lead in leads and set(leads[lead]["flags"]) & DISQUALIFYING]
    if {"I", "II"} & set(bad):
        return False, f"lead {', '.join(sorted({'I', 'II'} & set(bad)))} unusable"
    present = [lead for lead in MODEL_LEADS if lead in leads]
    if len(bad) * 2 > len(present):
        return False, f"{len(bad)} of {len(present)} model leads unusable ({', '.join(bad)})"
    return True, None
