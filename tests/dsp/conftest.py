"""Shared helpers for the signal-layer tests: real annotated records (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def cpsc2019_records(root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, signal mV, reference R peaks) of the CPSC 2019 records under ``root`` (500 Hz, one lead)."""
    from scipy.io import loadmat

    folder = root / "cpsc2019"
    files = sorted((folder / "data").glob("data_*.mat"))
    if not files:
        pytest.skip(f"no CPSC 2019 records in {folder}")
    out = []
    for f in files:
        ref = folder / "ref" / f.name.replace("data_", "R_")
        out.append((f.stem, loadmat(f)["ecg"].ravel().astype(np.float64),
                    loadmat(ref)["R_peak"].ravel().astype(np.int64)))
    return out


def wfdb_beats(base: Path) -> np.ndarray:
    """Beat annotations (sample indices) of a WFDB record's .atr, beat symbols only."""
    import wfdb

    ann = wfdb.rdann(str(base), "atr")
    return np.asarray(ann.sample)[np.isin(ann.symbol, list(BEAT_SYMBOLS))].astype(np.int64)
