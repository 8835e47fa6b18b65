from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import LeadError, RecordError
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.record import EcgRecord
from uniecg_edge.wfdb_io import read_record, write_record


def test_shipped_record_reads_as_12_lead_500hz() -> None:
    rec = read_record(EXAMPLE_RECORD)
    assert rec.leads == STANDARD_LEADS
    assert rec.fs == 500.0 and rec.n_samples == 5000
    assert rec.meta["age"] == 28 and rec.meta["sex"] == "M" and "426783006" in rec.meta["dx"]
    # Einthoven holds on a real recording within quantisation (1 µV per count, rounding in the source).
    assert np.max(np.abs(rec.lead("III") - (rec.lead("II") - rec.lead("I")))) < 0.01


def test_leads_selected_by_name_case_insensitively() -> None:
    rec = read_record(EXAMPLE_RECORD, leads=["AVR", "avl", "v6", "I"])
    assert rec.leads == ("aVR", "aVL", "V6", "I")
    full = read_record(EXAMPLE_RECORD)
    np.testing.assert_array_equal(rec.signal[0], full.lead("aVR"))


def test_unknown_lead_is_refused_with_its_name() -> None:
    with pytest.raises(LeadError, match="'V7'"):
        read_record(EXAMPLE_RECORD, leads=["V7"])


def test_ptb_record_without_its_frank_file_reads_the_12_leads(shared_ecg: Path) -> None:
    rec = read_record(shared_ecg / "ptbdb" / "s0010_re")
    assert rec.leads == STANDARD_LEADS and rec.fs == 1000.0
    assert rec.meta == {"age": 81.0, "sex": "F", "source": str(shared_ecg / "ptbdb" / "s0010_re")}


def test_two_lead_360hz_record(shared_ecg: Path) -> None:
    rec = read_record(shared_ecg / "mitdb" / "100.hea")
    assert rec.leads == ("MLII", "V5") and rec.fs == 360.0 and rec.n_samples == 650000


def test_missing_header(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="no such WFDB header"):
        read_record(tmp_path / "nothing.hea")


def test_truncated_data_file_is_named(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE_RECORD, tmp_path / "HR06004.hea")
    data = EXAMPLE_RECORD.with_suffix(".mat").read_bytes()
    (tmp_path / "HR06004.mat").write_bytes(data[: len(data) // 3])
    with pytest.raises(RecordError, match="truncated data file") as info:
        read_record(tmp_path / "HR06004.hea")
    assert "HR06004.mat" in str(info.value) and "\n" not in str(info.value)


def test_missing_data_file(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE_RECORD, tmp_path / "HR06004.hea")
    with pytest.raises(RecordError, match="not found"):
        read_record(tmp_path / "HR06004")


def test_malformed_header(tmp_path: Path) -> None:
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    with pytest.raises(RecordError, match="bad.hea"):
        read_record(tmp_path / "bad.hea")


def test_impossible_sampling_rate_in_header(tmp_path: Path) -> None:
    text = EXAMPLE_RECORD.read_text().splitlines()
    first = text[0].split()
    first[2] = "5"
    (tmp_path / "HR06004.hea").write_text("\n".join([" ".join(first)] + text[1:]) + "\n")
    shutil.copy(EXAMPLE_RECORD.with_suffix(".mat"), tmp_path / "HR06004.mat")
    with pytest.raises(RecordError, match="sampling rate"):
        read_record(tmp_path / "HR06004")


def test_write_then_read_round_trip_keeps_missing_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    signal = rng.normal(0, 1, size=(3, 1000)).astype(np.float32)
    signal[1, 100:110] = np.nan
    rec = EcgRecord(signal, fs=250.0, leads=("I", "II", "V1"), name="x", meta={"age": 40.0, "sex": "F"})
    header = write_record(rec, tmp_path / "out" / "x")
    back = read_record(header)
    assert back.leads == rec.leads and back.fs == 250.0 and back.meta["age"] == 40 and back.meta["sex"] == "F"
    assert np.array_equal(np.isnan(back.signal), np.isnan(signal))
    finite = np.isfinite(signal)
    assert np.max(np.abs(back.signal[finite] - signal[finite])) <= 0.0005 + 1e-6
