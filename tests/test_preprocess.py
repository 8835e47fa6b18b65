from __future__ import annotations

import numpy as np
import pytest

from uniecg_edge.errors import LeadError, RecordError
from uniecg_edge.leads import STANDARD_LEADS, canonical_name, derive_limb_leads
from uniecg_edge.preprocess import from_generator_space, to_generator_space, to_model_input
from uniecg_edge.record import EcgRecord


def _record(n_samples: int, fs: float, leads: tuple[str, ...] = STANDARD_LEADS) -> EcgRecord:
    t = np.arange(n_samples) / fs
    rows = [np.sin(2 * np.pi * (1 + i) * t) for i in range(len(leads))]
    return EcgRecord(np.array(rows), fs=fs, leads=leads)


def test_pads_short_records_with_zeros_on_the_right() -> None:
    x, derived = to_model_input(_record(3000, 500.0))
    assert x.shape == (12, 5000) and derived == ()
    assert np.all(x[:, 3000:] == 0) and np.any(x[:, 2990:3000] != 0)


def test_truncates_long_records() -> None:
    rec = _record(7000, 500.0)
    x, _ = to_model_input(rec)
    np.testing.assert_allclose(x, rec.signal[:, :5000], atol=1e-6)


def test_resamples_other_rates_to_500hz() -> None:
    rec = _record(10_000, 1000.0)
    x, _ = to_model_input(rec)
    expected = np.sin(2 * np.pi * 1 * np.arange(5000) / 500.0)
    assert np.max(np.abs(x[0, 100:-100] - expected[100:-100])) < 1e-2


def test_nan_becomes_zero() -> None:
    rec = _record(5000, 500.0)
    rec.signal[3, 10:20] = np.nan
    x, _ = to_model_input(rec)
    assert np.all(x[3, 10:20] == 0) and np.isfinite(x).all()


def test_reorders_by_name_and_derives_limb_leads() -> None:
    base = _record(5000, 500.0)
    keep = ["V6", "I", "V1", "II", "V2", "V3", "V4", "V5"]
    idx = [STANDARD_LEADS.index(k) for k in keep]
    rec = EcgRecord(base.signal[idx], fs=500.0, leads=tuple(k.lower() for k in keep))
    x, derived = to_model_input(rec)
    assert derived == ("III", "aVR", "aVL", "aVF")
    limb = derive_limb_leads(base.signal[0], base.signal[1])
    np.testing.assert_allclose(x[2], limb["III"], atol=1e-6)
    np.testing.assert_allclose(x[11], base.signal[11], atol=1e-6)


def test_refuses_missing_leads_by_name() -> None:
    rec = _record(5000, 500.0, leads=("I", "II", "V1"))
    with pytest.raises(LeadError, match="missing V2, V3, V4, V5, V6"):
        to_model_input(rec)


def test_refuses_an_all_nan_lead() -> None:
    rec = _record(5000, 500.0)
    rec.signal[7] = np.nan
    with pytest.raises(LeadError, match="V2 holds no finite sample"):
        to_model_input(rec)


def test_generator_space_round_trip() -> None:
    x, _ = to_model_input(_record(5000, 500.0))
    g = to_generator_space(x)
    assert g.shape == (12, 1024)
    back = from_generator_space(g)
    assert back.shape == (12, 5000)
    assert np.max(np.abs(back[0] - x[0])) < 1e-3  # a 1 Hz sine is band-limited far below 51.2 Hz


@pytest.mark.parametrize("fs", [0.0, -1.0, float("nan"), 10.0, 1e6])
def test_impossible_rates_are_refused(fs: float) -> None:
    with pytest.raises(RecordError, match="sampling rate"):
        EcgRecord(np.zeros((1, 10)), fs=fs, leads=("I",))


def test_lead_count_limits() -> None:
    with pytest.raises(RecordError, match="1 to 15"):
        EcgRecord(np.zeros((16, 10)), fs=500.0, leads=tuple(f"c{i}" for i in range(16)))


def test_canonical_names() -> None:
    names = [canonical_name(n) for n in ("AVR", "avl", "Avf", "v1", "i", "MLII")]
    assert names == ["aVR", "aVL", "aVF", "V1", "I", "MLII"]
