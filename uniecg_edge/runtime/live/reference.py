"""Reference waveforms: an ECG generated from a report's findings and the patient, compared with the live one.

``reference_request`` turns the report's rhythm and DSP measurements into a request in the style of the model's
training reports; the interpreter's ``generate`` makes a 10-s, 12-lead ECG for it at the patient's measured
heart rate (and age and sex when given, else ``DEFAULT_AGE`` / ``DEFAULT_SEX``, listed under ``assumed``), with
few scheduler steps. ``compare_with_reference`` puts both on 500 Hz and reports, per lead, the correlation and the
RMS difference (after removing each lead's mean) of the median beats aligned on their R peaks, or of the whole
windows at the best common lag when either has too few beats; plus the interval and axis differences between
the live DSP measurements and the reference's. ``plot_reference`` draws both in the 12-lead paper layout.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...dsp import AnalysisConfig, FilterConfig, analyze_record, filter_zero_phase, median_beats
from ...leads import STANDARD_LEADS, select_standard_12
from ...preprocess import MODEL_FS, resample_to
from ...record import EcgRecord
from ...report import MEASUREMENT_KEYS, Report
from .config import ReferenceSettings
from .interpreter import Interpreter

log = logging.getLogger(__name__)

DEFAULT_AGE = 50.0
DEFAULT_SEX = "M"
DEFAULT_HR = 72.0
COMPARE_FILTER = FilterConfig(highpass_hz=0.5, notch_hz=None, lowpass_hz=40.0)
MAX_LAG_S = 1.5


@dataclass
class ReferenceResult:
    """The generated reference, aligned to the live window for display, and the comparison figures."""

    record: EcgRecord  # the reference as generated (12 leads, 500 Hz)
    aligned: EcgRecord  # shifted by the comparison's lag, for the overlay
    comparison: dict[str, Any]


def reference_request(report: Report) -> str:
    """The generation request for ``report``'s findings (rhythm, measurements, critical findings)."""
    m = report.measurements
    sentences = []
    rhythm = report.rhythm or "a regular rhythm"
    if m.heart_rate_bpm is not None:
        sentences.append(f"The ECG shows {rhythm} with a ventricular rate of {m.heart_rate_bpm:.0f} bpm.")
    else:
        sentences.append(f"The ECG shows {rhythm}.")
    intervals = [(name, getattr(m, key)) for name, key in
                 (("PR interval", "pr_ms"), ("QRS duration", "qrs_ms"), ("QT interval", "qt_ms"), ("QTc", "qtc_ms"))]
    known = [f"the {name} is {value:.0f} ms" for name, value in intervals if value is not None]
    if known:
        text = "; ".join(known) + "."
        sentences.append(text[0].upper() + text[1:])
    if m.axis_deg is not None:
        sentences.append(f"The frontal QRS axis is {m.axis_deg:.0f} degrees.")
    for finding in report.critical or []:
        message = finding.get("message") or finding.get("rule")
        if message:
            sentences.append(f"{message}.")
    return " ".join(sentences)


def generate_reference(interpreter: Interpreter, record: EcgRecord, report: Report,
                       settings: ReferenceSettings) -> ReferenceResult:
    """Generate the reference for ``report`` (of ``record``) and compare it with ``record``."""
    assumed = []
    hr = report.measurements.heart_rate_bpm
    if hr is None:
        hr, assumed = DEFAULT_HR, ["heart_rate_bpm"]
    age = settings.age if settings.age is not None else record.meta.get("age")
    sex = settings.sex if settings.sex is not None else record.meta.get("sex")
    if age is None:
        age = DEFAULT_AGE
        assumed.append("age")
    if sex not in ("M", "F"):
        sex = DEFAULT_SEX
        assumed.append("sex")
    request = reference_request(report)
    start = time.perf_counter()
    generated = interpreter.generate(request, hr=float(hr), age=float(age), sex=str(sex), steps=settings.steps,
                                     scheduler=settings.scheduler, seed=settings.seed)
    generation_s = time.perf_counter() - start
    comparison, lag = compare_with_reference(record, report, generated.record)
    comparison.update({
        "request": request,
        "patient": {"heart_rate_bpm": float(hr), "age": float(age), "sex": sex},
        "assumed": assumed,
        "steps": generated.steps,
        "scheduler": settings.scheduler,
        "seed": settings.seed,
        "generation_s": round(generation_s, 4),
    })
    aligned = _shifted(generated.record, lag)
    return ReferenceResult(generated.record, aligned, comparison)


def _standard_500(record: EcgRecord) -> tuple[np.ndarray, np.ndarray]:
    """The 12 standard leads at 500 Hz, band-passed, and the mask of samples that were present."""
    signal, _ = select_standard_12(record.signal, record.leads)
    present = np.isfinite(signal)
    filtered = filter_zero_phase(signal, record.fs, COMPARE_FILTER)
    out = resample_to(np.nan_to_num(filtered), record.fs, MODEL_FS)
    if record.fs != MODEL_FS:
        idx = np.minimum((np.arange(out.shape[1]) * record.fs / MODEL_FS).astype(int), signal.shape[1] - 1)
        present = present[:, idx]
    return out.astype(np.float64), present


def _peaks_500(report: Report, fs: float) -> np.ndarray:
    peaks = report.measurements.r_peaks or []
    return np.round(np.asarray(peaks, dtype=np.float64) * MODEL_FS / fs).astype(np.int64)


def _per_lead(live: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for i, lead in enumerate(STANDARD_LEADS):
        keep = mask[i] & np.isfinite(live[i]) & np.isfinite(ref[i])
        if keep.sum() < 10:
            out[lead] = {"correlation": None, "rms_mv": None}
            continue
        a, b = live[i, keep] - live[i, keep].mean(), ref[i, keep] - ref[i, keep].mean()
        denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
        corr = float((a * b).sum() / denom) if denom > 0 else None
        out[lead] = {"correlation": None if corr is None else round(corr, 4),
                     "rms_mv": round(float(np.sqrt(np.mean((a - b) ** 2))), 5)}
    return out


def _best_lag(live: np.ndarray, ref: np.ndarray, max_lag: int) -> int:
    """The shift of ``ref`` (samples, positive: later) that best matches ``live``, summed over leads."""
    n = live.shape[1]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(live, size, axis=1) * np.conj(np.fft.rfft(ref, size, axis=1))
    xcorr = np.fft.irfft(spec, size, axis=1).sum(axis=0)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = xcorr[lags % size]
    return int(lags[int(np.argmax(values))])


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    if lag >= 0:
        out[:, lag:] = x[:, : x.shape[1] - lag]
    else:
        out[:, :lag] = x[:, -lag:]
    return out


def _shifted(record: EcgRecord, lag: int) -> EcgRecord:
    signal = _shift(record.signal.astype(np.float64), lag).astype(np.float32)
    return EcgRecord(signal, record.fs, record.leads, name=record.name, meta=dict(record.meta))


def _differences(live: Report, ref: Report) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for key in MEASUREMENT_KEYS:
        a, b = getattr(live.measurements, key), getattr(ref.measurements, key)
        diff = None
        if a is not None and b is not None:
            diff = float(a) - float(b)
            if key == "axis_deg":
                diff = (diff + 180.0) % 360.0 - 180.0
            diff = round(diff, 2)
        out[key] = {"live": a, "reference": b, "difference": diff}
    return out


def compare_with_reference(live: EcgRecord, live_report: Report, reference: EcgRecord,
                           analysis: AnalysisConfig | None = None) -> tuple[dict[str, Any], int]:
    """Per-lead correlation and RMS difference, interval and axis differences; and the lag (samples at the
    reference's rate) that lines the reference up with the live window for display."""
    live_x, present = _standard_500(live)
    ref_x, _ = _standard_500(reference)
    n = min(live_x.shape[1], ref_x.shape[1])
    live_x, present, ref_x = live_x[:, :n], present[:, :n], ref_x[:, :n]
    ref_report = analyze_record(reference, analysis or AnalysisConfig())
    live_peaks = _peaks_500(live_report, live.fs)
    ref_peaks = _peaks_500(ref_report, reference.fs)
    live_beats = median_beats(np.where(present, live_x, np.nan), MODEL_FS, live_peaks) if live_peaks.size else None
    ref_beats = median_beats(ref_x, MODEL_FS, ref_peaks) if ref_peaks.size else None
    if live_beats is not None and ref_beats is not None:
        method = "median_beat"
        per_lead = _per_lead(live_beats.beats, ref_beats.beats, np.isfinite(live_beats.beats))
        nearest = live_peaks[np.argmin(np.abs(live_peaks - ref_peaks[0]))]
        lag = int(nearest - ref_peaks[0])
    else:
        method = "window"
        lag = _best_lag(np.where(present, live_x, 0.0), ref_x, int(MAX_LAG_S * MODEL_FS))
        per_lead = _per_lead(live_x, _shift(ref_x, lag), present)
    correlations = [v["correlation"] for v in per_lead.values() if v["correlation"] is not None]
    rms = [v["rms_mv"] for v in per_lead.values() if v["rms_mv"] is not None]
    comparison: dict[str, Any] = {
        "method": method,
        "lag_ms": round(lag * 1000.0 / MODEL_FS, 1),
        "per_lead": per_lead,
        "mean_correlation": round(float(np.mean(correlations)), 4) if correlations else None,
        "rms_mv": round(float(np.sqrt(np.mean(np.square(rms)))), 5) if rms else None,
        "measurements": _differences(live_report, ref_report),
        "reference_rhythm": ref_report.rhythm,
    }
    return comparison, int(round(lag * reference.fs / MODEL_FS))


def plot_reference(live: EcgRecord, result: ReferenceResult, path: str | os.PathLike[str], *,
                   title: str | None = None) -> Path:
    """The live window with the (aligned) reference drawn over it, in the 12-lead paper layout."""
    from ...plot import plot_12lead

    corr = result.comparison.get("mean_correlation")
    caption = title or (f"reference: mean r {corr:.2f}" if corr is not None else "reference")
    return plot_12lead(live, path, reference=result.aligned, title=caption)


def add_reference(interpreter: Interpreter, record: EcgRecord, report: Report, *,
                  png_dir: str | os.PathLike[str] | None = ".",
                  settings: ReferenceSettings | None = None) -> ReferenceResult:
    """``interpret --reference``: generate and compare (into ``report``'s ``reference``) and, unless ``png_dir`` is
    None, draw the overlay as ``png_dir/<record>.reference.png`` (its path under ``reference.png``)."""
    result = generate_reference(interpreter, record, report, settings or ReferenceSettings())
    report.extra["reference"] = result.comparison
    if png_dir is not None:
        from ...devices.recorder import with_derived_leads

        signal, leads, _ = with_derived_leads(record.signal, record.leads)
        shown = EcgRecord(signal, record.fs, leads, name=record.name, meta=dict(record.meta))
        path = plot_reference(shown, result, Path(png_dir) / f"{record.name}.reference.png")
        result.comparison["png"] = str(path)
    return result
