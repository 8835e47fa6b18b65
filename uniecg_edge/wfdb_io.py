"""Read and write WFDB records (``.hea`` with ``.dat`` or ``.mat``) as ``EcgRecord``s.

Every failure becomes a ``RecordError`` whose message names the file and the problem, so the CLI can print
one line. Leads are selected by name, case-insensitively; signals whose data file is absent (PTB's Frank
leads in ``.xyz``) are left out with a warning rather than failing the whole record.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LeadError, RecordError
from .leads import canonical_name, find_lead
from .record import EcgRecord

log = logging.getLogger(__name__)

# Bytes per sample for the WFDB formats whose size we can check before reading.
_BYTES_PER_SAMPLE = {"8": 1.0, "80": 1.0, "16": 2.0, "61": 2.0, "160": 2.0, "212": 1.5, "24": 3.0, "32": 4.0,
                     "310": 4.0 / 3.0, "311": 4.0 / 3.0}
_EXTENSIONS = (".hea", ".dat", ".mat", ".atr")
WRITE_GAIN_PER_MV = 1000.0  # fmt 16 at 1 µV per count: ±32.767 mV range, as PTB-XL


def record_base(path: str | os.PathLike[str]) -> Path:
    """The record path without its extension (``x/HR06000.hea`` → ``x/HR06000``)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in _EXTENSIONS else p


def _check_data_files(base: Path, header: Any) -> list[int]:
    """Indices of the signals whose data files exist and are long enough; raise if none can be read."""
    directory = base.parent
    sizes: dict[str, float] = {}
    offsets: dict[str, int] = {}
    usable: list[int] = []
    absent: set[str] = set()
    for i, file_name in enumerate(header.file_name):
        path = directory / file_name
        if not path.is_file():
            absent.add(file_name)
            continue
        usable.append(i)
        fmt = str(header.fmt[i])
        spf = (header.samps_per_frame[i] or 1) if header.samps_per_frame else 1
        per = _BYTES_PER_SAMPLE.get(fmt)
        if per is None:
            sizes[file_name] = float("nan")
        else:
            sizes[file_name] = sizes.get(file_name, 0.0) + per * spf * (header.sig_len or 0)
        offsets[file_name] = int((header.byte_offset[i] if header.byte_offset else 0) or 0)
    if not usable:
        raise RecordError(f"{base}: data file {', '.join(sorted(absent))} not found")
    if absent:
        log.warning("%s: left out signals whose data file is absent: %s", base, ", ".join(sorted(absent)))
    for file_name, need in sizes.items():
        if np.isnan(need):
            continue
        expected = int(np.ceil(need)) + offsets.get(file_name, 0)
        actual = (directory / file_name).stat().st_size
        if actual < expected:
            raise RecordError(
                f"{directory / file_name}: truncated data file ({actual} bytes; the header needs {expected})"
            )
    return usable


def _parse_comments(comments: Sequence[str]) -> dict[str, Any]:
    """Age, sex and diagnoses from CinC (``Age: 59``) and PTB (``age: 81``) header comments."""
    meta: dict[str, Any] = {}
    for line in comments:
        m = re.match(r"\s*([A-Za-z]+)\s*:\s*(.*?)\s*$", line)
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2)
        if key == "age":
            try:
                age = float(value)
            except ValueError:
                continue
            if np.isfinite(age) and 0 <= age < 130:
                meta["age"] = age
        elif key == "sex":
            v = value.strip().lower()
            if v in ("m", "male"):
                meta["sex"] = "M"
            elif v in ("f", "female"):
                meta["sex"] = "F"
        elif key == "dx":
            meta["dx"] = [code.strip() for code in value.split(",") if code.strip()]
    return meta


def read_record(path: str | os.PathLike[str], leads: Sequence[str] | None = None) -> EcgRecord:
    """Read a WFDB record in physical units (mV); ``leads`` selects by name, case-insensitively.

    Missing samples stay NaN. Lead names keep the standard spelling (``avr`` → ``aVR``).
    """
    import wfdb  # deferred: wfdb pulls in pandas

    base = record_base(path)
    header_path = base.with_suffix(".hea")
    if not header_path.is_file():
        raise RecordError(f"{header_path}: no such WFDB header")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises bare ValueErrors and more for malformed headers
        raise RecordError(f"{header_path}: malformed WFDB header ({_short(exc)})") from None
    if not header.n_sig:
        raise RecordError(f"{header_path}: the header declares no signals")
    if not header.sig_len:
        raise RecordError(f"{header_path}: the header declares no samples")
    usable = _check_data_files(base, header)
    names = [header.sig_name[i] for i in usable]
    channels = usable
    if leads is not None:
        channels = []
        for wanted in leads:
            idx = find_lead(names, wanted)
            if idx is None:
                raise LeadError(f"{header_path}: no lead {wanted!r} (has: {', '.join(names)})")
            channels.append(usable[idx])
    try:
        rec = wfdb.rdrecord(str(base), channels=channels, physical=True)
    except Exception as exc:
        raise RecordError(f"{base}: unreadable WFDB record ({_short(exc)})") from None
    signal = np.asarray(rec.p_signal, dtype=np.float32).T
    if signal.shape[1] != header.sig_len:
        raise RecordError(f"{base}: read {signal.shape[1]} samples, the header declares {header.sig_len}")
    units = [str(u).lower() for u in (rec.units or [])]
    for i, unit in enumerate(units):
        if unit in ("uv", "µv"):
            signal[i] /= 1000.0
        elif unit == "v":
            signal[i] *= 1000.0
    meta = _parse_comments(rec.comments or [])
    meta["source"] = str(base)
    return EcgRecord(
        signal=signal,
        fs=float(rec.fs),
        leads=tuple(canonical_name(n) for n in rec.sig_name),
        name=base.name,
        meta=meta,
    )


def write_record(record: EcgRecord, path: str | os.PathLike[str], comments: Sequence[str] = ()) -> Path:
    """Write ``record`` as WFDB fmt 16 (1 µV per count); NaN becomes WFDB's missing-sample value.

    Returns the path of the header. Values beyond ±32.767 mV are clipped with a warning.
    """
    import wfdb

    base = record_base(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    signal = record.signal.astype(np.float64).T.copy()
    limit = 32767 / WRITE_GAIN_PER_MV
    finite = np.isfinite(signal)
    if np.any(np.abs(signal[finite]) > limit):
        log.warning("%s: values beyond ±%.3f mV clipped", base, limit)
    signal[finite] = np.clip(signal[finite], -limit, limit)
    n = signal.shape[1]
    all_comments = list(comments)
    if "age" in record.meta:
        all_comments.append(f"Age: {record.meta['age']:g}")
    if "sex" in record.meta:
        all_comments.append(f"Sex: {'Male' if record.meta['sex'] == 'M' else 'Female'}")
    wfdb.wrsamp(
        base.name,
        fs=record.fs,
        units=["mV"] * n,
        sig_name=list(record.leads),
        p_signal=signal,
        fmt=["16"] * n,
        adc_gain=[WRITE_GAIN_PER_MV] * n,
        baseline=[0] * n,
        comments=all_comments,
        write_dir=str(base.parent),
    )
    return base.with_suffix(".hea")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
