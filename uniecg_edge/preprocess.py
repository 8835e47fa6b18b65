"""Signal conversions between records and the model's inputs and outputs.

* Understanding input (GEM): the 12 standard leads, 500 Hz, mV, NaN → 0, zero-padded on the right or
  truncated to 5000 samples, no filtering or scaling.
* Generator space (DiffuSETS): 12 × 1024 at 102.4 Hz (``scipy.signal.resample`` of a 10 s, 500 Hz window).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

from .errors import LeadError
from .leads import STANDARD_LEADS, select_standard_12
from .record import EcgRecord

MODEL_FS = 500.0
MODEL_SAMPLES = 5000
GENERATOR_FS = 102.4
GENERATOR_SAMPLES = 1024


def resample_to(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis (NaN-safe: missing samples are zero-filled first)."""
    if fs_in == fs_out:
        return signal
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    clean = np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0)
    return sps.resample_poly(clean, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def standard_12(record: EcgRecord) -> tuple[np.ndarray, tuple[str, ...]]:
    """The 12 standard leads at the record's own rate and the names of leads derived from I and II.

    Refuses (``LeadError``) a record that lacks a needed lead or whose needed lead holds no finite sample.
    """
    signal, derived = select_standard_12(record.signal, record.leads)
    empty = [STANDARD_LEADS[i] for i in range(12) if not np.isfinite(signal[i]).any()]
    if empty:
        raise LeadError(f"{record.name}: lead {', '.join(empty)} holds no finite sample (all NaN)")
    return signal, derived


def to_model_input(record: EcgRecord) -> tuple[np.ndarray, tuple[str, ...]]:
    """(12, 5000) float32 at 500 Hz in mV, GEM's padding and truncation; plus the derived lead names."""
    signal, derived = standard_12(record)
    signal = resample_to(signal, record.fs, MODEL_FS)
    signal = np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0)
    out = np.zeros((12, MODEL_SAMPLES), dtype=np.float32)
    n = min(MODEL_SAMPLES, signal.shape[1])
    out[:, :n] = signal[:, :n]
    return out, derived


def to_generator_space(model_input: np.ndarray) -> np.ndarray:
    """(…, 12, 5000) at 500 Hz → (…, 12, 1024) at 102.4 Hz with DiffuSETS' FFT resampling."""
    return sps.resample(np.asarray(model_input, dtype=np.float64), GENERATOR_SAMPLES, axis=-1).astype(np.float32)


def from_generator_space(generated: np.ndarray) -> np.ndarray:
    """(…, 12, 1024) at 102.4 Hz → (…, 12, 5000) at 500 Hz (FFT resampling; the window is 10 s either way)."""
    return sps.resample(np.asarray(generated, dtype=np.float64), MODEL_SAMPLES, axis=-1).astype(np.float32)
