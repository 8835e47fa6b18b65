"""Data shipped with the package: an open-licence example ECG record (see records/ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path

RECORDS_DIR = Path(__file__).resolve().parent / "records"
EXAMPLE_RECORD = RECORDS_DIR / "HR06004.hea"
