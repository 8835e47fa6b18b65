"""Real ECG windows for static int8 calibration, kept apart from the records the quality gates check.

The split (fixed, written down so it cannot drift):

* **check records** (``CHECK_RECORDS``): the gates (``gates.py``) and the export's parity compare the quantized
  bundle with the fp32 one on these: the last record of each CinC 2021 source, ``HR06004`` (PTB-XL), ``E07509``
  (Georgia) and ``JS20009`` (Chapman-Shaoxing/Ningbo).
* **calibration records**: everything else a caller passes (the other CinC records, PTB ``s0010_re``...).
  ``ecg_calibration_windows`` refuses the check records silently, by name, whatever list it is given, so
  the activation ranges are never fitted to the records that judge them.

A window is ``window_s`` seconds of a record at its own rate, moved by ``stride_s``, then brought to the model's
input (12 x 5000 at 500 Hz, ``preprocess.to_model_input``). A record shorter than a window gives one zero-padded
window; a record without the 12 standard leads (MIT-BIH's two leads) is left out with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, LeadError
from ..preprocess import to_model_input
from ..record import EcgRecord

log = logging.getLogger(__name__)

CHECK_RECORDS: tuple[str, ...] = ("HR06004", "E07509", "JS20009")
DEFAULT_WINDOW_S = 10.0
MIN_WINDOW_FRACTION = 0.5  # the last window of a long record must hold at least half a window of signal


def record_name(record: EcgRecord | str | os.PathLike[str]) -> str:
    """The name a record is known by in the split (``x/HR06004.hea`` -> ``HR06004``)."""
    if isinstance(record, EcgRecord):
        return Path(record.name).name
    path = Path(record)
    return path.stem if path.suffix.lower() in (".hea", ".mat", ".dat") else path.name


def is_check_record(record: EcgRecord | str | os.PathLike[str], check_records: Iterable[str] = CHECK_RECORDS) -> bool:
    return record_name(record) in set(check_records)


def ecg_calibration_windows(
    records: Iterable[EcgRecord | str | os.PathLike[str]],
    window_s: float = DEFAULT_WINDOW_S,
    *,
    stride_s: float | None = None,
    check_records: Iterable[str] = CHECK_RECORDS,
    max_windows: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield (12, 5000) float32 model inputs from ``window_s``-second windows of real records.

    Parameters
    ----------
    records : WFDB record paths (``.hea`` or the base name) or ``EcgRecord`` objects.
    stride_s : the step between windows (default ``window_s``: windows do not overlap).
    check_records : names never used (the gates' records, ``CHECK_RECORDS``).
    max_windows : stop after this many windows.

    Raises ``InputError`` when no record yields a window.
    """
    from ..wfdb_io import read_record

    if window_s <= 0:
        raise InputError(f"calibration window must be positive, got {window_s} s")
    stride = window_s if stride_s is None else stride_s
    if stride <= 0:
        raise InputError(f"calibration stride must be positive, got {stride} s")
    excluded = set(check_records)
    count = 0
    for item in records:
        if record_name(item) in excluded:
            log.info("calibration: %s is a check record of the gates; left out", record_name(item))
            continue
        record = item if isinstance(item, EcgRecord) else read_record(item)
        try:
            for window in record_windows(record, window_s, stride):
                yield window
                count += 1
                if max_windows is not None and count >= max_windows:
                    return
        except LeadError as exc:
            log.warning("calibration: %s left out (%s)", record.name, exc)
    if count == 0:
        raise InputError("calibration: no usable 12-lead window in the records given")


def record_windows(record: EcgRecord, window_s: float, stride_s: float) -> Iterator[np.ndarray]:
    """The model inputs of one record's windows (``LeadError`` when it lacks the 12 standard leads)."""
    width = max(1, int(round(window_s * record.fs)))
    step = max(1, int(round(stride_s * record.fs)))
    total = record.n_samples
    starts = list(range(0, max(1, total - width + 1), step))
    tail = starts[-1] + step
    if total > width and tail < total and total - tail >= MIN_WINDOW_FRACTION * width:
        starts.append(tail)
    for start in starts:
        piece = EcgRecord(record.signal[:, start:start + width], fs=record.fs, leads=record.leads,
                          name=f"{record.name}@{start / record.fs:g}s", meta=record.meta)
        model_input, _ = to_model_input(piece)
        yield model_input
