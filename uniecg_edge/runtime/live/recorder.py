"""Continuous raw recording to WFDB: every acquired sample reaches the disk as it arrives.

On-disk layout for ``--record PATH`` (one ordinary single-segment WFDB record, readable at any moment)::

    PATH.dat       format 32 (little-endian int32, samples interleaved), appended chunk by chunk with os.write
    PATH.hea       rewritten atomically (temporary file, fsync, rename) every ``flush_s``: the sample count,
                   per-signal gain, initial value and checksum of everything written so far
    PATH.run.json  the run's configuration and device at the start; its summary at the end

WFDB cannot append through its library, but format 32 is a plain interleaved array, so the data file grows by
appending and only the small header is rewritten. Each chunk is handed to the operating system as it arrives
(a crash of the process loses nothing already handed over); the data file is fsynced before every header rewrite,
so the header never declares a sample that is not on the disk. After a hard kill (SIGKILL, power loss) the header
may lag the data file by up to ``flush_s``; :func:`recover_recording` rewrites it from the data file's size.

Values are stored losslessly: at the device's own ADC scale when it declares one (one count per ADC step), else
at 10 nV per count. Missing samples (gaps: lost packets, a disconnection, samples the pipeline could not take)
are WFDB's missing value at their true position, so the time axis never shifts. Signal names are the device's
lead names (a 16-channel Daisy keeps all 16; WFDB has no lead-count limit).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError, RecordError
from ...wfdb_io import record_base

log = logging.getLogger(__name__)

FORMAT = "32"
BYTES_PER_VALUE = 4
MISSING = np.int32(-(2**31))  # WFDB's missing value for format 32
DEFAULT_COUNTS_PER_MV = 1e5  # 10 nV per count: +-21 V of range, finer than any ECG front end
_INT32_MAX = 2**31 - 1


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def header_text(name: str, fs: float, n_samples: int, leads: Sequence[str], gains: Sequence[float],
                init_values: Sequence[int], checksums: Sequence[int], comments: Sequence[str] = ()) -> str:
    """The WFDB header of a format-32 record whose data file is ``name.dat``."""
    lines = [f"{name} {len(leads)} {fs:.12g} {n_samples}"]
    for lead, gain, init, checksum in zip(leads, gains, init_values, checksums, strict=True):
        lines.append(f"{name}.dat {FORMAT} {gain:.12g}(0)/mV 32 0 {int(init)} {int(checksum)} 0 {lead}")
    lines.extend(f"# {c}" for c in comments)
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so a reader sees the old or the new file, never a half-written one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class StreamRecorder:
    """Appends (n, channels) mV chunks at absolute sample indices to a growing WFDB record.

    Parameters
    ----------
    path
        Record path without extension (``.hea``/``.dat`` are added).
    fs, leads
        The device's rate and channel names.
    mv_per_count
        The device's ADC step in mV (stored counts are then exact ADC counts); ``None``: 10 nV per count.
    flush_s
        How often ``maybe_flush`` fsyncs the data file and rewrites the header.
    """

    def __init__(self, path: str | os.PathLike[str], fs: float, leads: Sequence[str],
                 mv_per_count: float | None = None, flush_s: float = 1.0, comments: Sequence[str] = ()) -> None:
        self.base = record_base(path)
        self.fs = float(fs)
        self.leads = tuple(leads)
        self.channels = len(self.leads)
        gain = 1.0 / mv_per_count if mv_per_count else DEFAULT_COUNTS_PER_MV
        self.gains = [float(gain)] * self.channels
        self.flush_s = float(flush_s)
        self.comments = list(comments)
        self.samples_written = 0  # rows on the disk (including missing rows)
        self.missing_rows = 0  # rows written as missing because nothing arrived for them
        self.clipped_values = 0
        self._sums = np.zeros(self.channels, dtype=np.int64)
        self._init: np.ndarray | None = None
        self._last_flush = time.monotonic()
        self._flushed_samples = -1
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.data_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise InputError(f"cannot write the recording {self.data_path}: {exc.strerror or exc}") from None
        self.flush(force=True)

    @property
    def data_path(self) -> Path:
        return self.base.with_name(self.base.name + ".dat")

    @property
    def header_path(self) -> Path:
        return self.base.with_name(self.base.name + ".hea")

    def append(self, start: int, samples: np.ndarray) -> int:
        """Write ``samples`` (n, channels) mV, the first at absolute index ``start``.

        A start beyond what was written fills the gap with missing rows (returned: their number); rows at or
        before the last written index are refused (a bug upstream), with a warning.
        """
        if self._fd is None:
            raise RecordError(f"{self.base}: recording already closed")
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise RecordError(f"{self.base}: chunk of shape {x.shape}, expected (n, {self.channels})")
        gap = int(start) - self.samples_written
        if gap < 0:
            overlap = min(-gap, x.shape[0])
            log.warning("%s: %d rows at %d overlap what is written (up to %d); dropped", self.base, overlap, start,
                        self.samples_written)
            x = x[overlap:]
            gap = 0
        if gap:
            self._write_counts(np.full((gap, self.channels), MISSING, dtype=np.int32))
            self.missing_rows += gap
        if x.shape[0]:
            self._write_counts(self._to_counts(x))
        return gap

    def _to_counts(self, x: np.ndarray) -> np.ndarray:
        counts = np.round(x * np.asarray(self.gains)[None, :])
        finite = np.isfinite(counts)
        over = finite & (np.abs(counts) > _INT32_MAX)
        if over.any():
            self.clipped_values += int(over.sum())
            log.warning("%s: %d values beyond the int32 range clipped", self.base, int(over.sum()))
        out = np.where(finite, np.clip(counts, -_INT32_MAX, _INT32_MAX), 0).astype(np.int32)
        out[~finite] = MISSING
        return out

    def _write_counts(self, counts: np.ndarray) -> None:
        assert self._fd is not None
        if self._init is None and counts.shape[0]:
            self._init = counts[0].copy()
        data = counts.astype("<i4", copy=False).tobytes()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._sums += counts.sum(axis=0, dtype=np.int64)
        self.samples_written += counts.shape[0]

    def maybe_flush(self) -> None:
        """Flush if ``flush_s`` has passed since the last flush."""
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self, force: bool = False) -> None:
        """fsync the data file, then rewrite the header for every sample written so far."""
        if self._fd is None:
            return
        self._last_flush = time.monotonic()
        if not force and self._flushed_samples == self.samples_written:
            return
        os.fsync(self._fd)
        self._write_header()
        self._flushed_samples = self.samples_written

    def _write_header(self, comments: Sequence[str] = ()) -> None:
        init = self._init if self._init is not None else np.zeros(self.channels, dtype=np.int32)
        checksums = [int(s % 65536) for s in self._sums]
        text = header_text(self.base.name, self.fs, self.samples_written, self.leads, self.gains,
                           [int(v) for v in init], checksums, [*self.comments, *comments])
        write_atomically(self.header_path, text)

    def close(self, comments: Sequence[str] = ()) -> Path:
        """Final flush (with extra header ``comments``); returns the header path. Safe to call twice."""
        if self._fd is not None:
            os.fsync(self._fd)
            self._write_header(comments)
            os.close(self._fd)
            self._fd = None
        return self.header_path

    def write_sidecar(self, data: dict[str, Any]) -> Path:
        """``PATH.run.json``: configuration, device and (at the end) the run's summary."""
        path = self.base.with_name(self.base.name + ".run.json")
        write_atomically(path, json.dumps(data, indent=2, default=str) + "\n")
        return path


def recover_recording(path: str | os.PathLike[str]) -> int:
    """Rewrite the header of a recording cut short (SIGKILL, power loss) to declare every whole row in its data
    file; returns the number of rows now declared. Checksums and initial values are recomputed."""
    import wfdb

    base = record_base(path)
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # noqa: BLE001 - wfdb raises many kinds
        raise RecordError(f"{base}.hea: unreadable header ({exc})") from None
    if any(str(f) != FORMAT for f in header.fmt):
        raise RecordError(f"{base}.hea: not a live recording (format {header.fmt[0]}, expected {FORMAT})")
    data = np.fromfile(base.with_name(base.name + ".dat"), dtype="<i4")
    n_sig = int(header.n_sig)
    rows = data.size // n_sig
    counts = data[: rows * n_sig].reshape(rows, n_sig).astype(np.int64)
    init = counts[0] if rows else np.zeros(n_sig, dtype=np.int64)
    checksums = [int(s % 65536) for s in counts.sum(axis=0)]
    text = header_text(base.name, float(header.fs), rows, list(header.sig_name), list(header.adc_gain),
                       [int(v) for v in init], checksums, list(header.comments or []) + ["recovered after a crash"])
    write_atomically(base.with_name(base.name + ".hea"), text)
    return rows
