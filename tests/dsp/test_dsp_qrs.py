"""R-peak detection: stream vs whole record, synthetic truth, and the targets on real annotated records.

The target tests (MIT-BIH 100 in full, all CPSC 2019 records here, CPSC 2021) run in the default suite: together
they take a few seconds. ``benchmarks/dsp_bench.py`` prints the same figures beside NeuroKit2's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.dsp import StreamingRPeakDetector, detect_r_peaks
from uniecg_edge.dsp.scoring import match_peaks
from uniecg_edge.synth import NoiseConfig, SynthConfig, synthesize

from .conftest import cpsc2019_records, wfdb_beats


def _stream(x: np.ndarray, fs: float, chunk_sizes: np.ndarray) -> np.ndarray:
    det = StreamingRPeakDetector(fs, x.shape[0])
    out, pos = [], 0
    for n in chunk_sizes:
        out.append(det.process(x[:, pos: pos + n]))
        pos += n
        if pos >= x.shape[1]:
            break
    out.append(det.flush())
    return np.concatenate(out)


def test_stream_is_independent_of_chunking_and_equals_the_first_pass() -> None:
    syn = synthesize(SynthConfig(hr_bpm=85, seed=4, noise=NoiseConfig(baseline_mv=0.2, emg_mv=0.02)), 40.0)
    x = syn.record.signal
    first_pass = detect_r_peaks(x, 500.0, refine=False)
    rng = np.random.default_rng(0)
    a = _stream(x, 500.0, rng.integers(1, 300, size=10_000))
    b = _stream(x, 500.0, np.full(10_000, 20))  # 40 ms chunks, as a device delivers them
    # the same beats; a position may differ by a sample where two samples tie up to rounding error
    for streamed in (a, b):
        assert streamed.shape == first_pass.shape
        assert np.abs(streamed - first_pass).max() <= 1


def test_stream_matches_the_whole_record_detector_within_a_few_samples(shared_ecg: Path) -> None:
    import wfdb

    rec = wfdb.rdrecord(str(shared_ecg / "mitdb" / "100"), sampto=360 * 300)
    x = rec.p_signal.T
    streamed = _stream(x, 360.0, np.full(100_000, 36))
    offline = detect_r_peaks(x, 360.0)
    score = match_peaks(offline, streamed, tolerance=3)  # 3 samples = 8 ms
    assert score.sensitivity >= 0.995 and score.ppv >= 0.995
    # the stream lags by its decisions, not by misplaced peaks: every matched peak is the same sample
    common = np.intersect1d(offline, streamed)
    assert common.size >= 0.99 * offline.size


@pytest.mark.parametrize("hr", [35, 60, 100, 180])
def test_synthetic_beats_found_across_rates(hr: float) -> None:
    syn = synthesize(SynthConfig(hr_bpm=hr, seed=1), 30.0)
    peaks = detect_r_peaks(syn.record.signal, 500.0)
    score = match_peaks(syn.r_peaks, peaks, tolerance=0.05 * 500)
    assert score.tp == syn.r_peaks.size - _cut_at_edges(syn.r_peaks, syn.record.n_samples)
    assert score.fp == 0
    # placed on the R wave, not just near it
    matched = [p for p in peaks if np.min(np.abs(syn.r_peaks - p)) <= 25]
    errors = [np.min(np.abs(syn.r_peaks - p)) for p in matched]
    assert np.median(errors) <= 3


def _cut_at_edges(r_peaks: np.ndarray, n: int) -> int:
    """Beats within 50 ms of the record's ends are not reported (their QRS is cut)."""
    return int(((r_peaks < 25) | (r_peaks >= n - 25)).sum())


def test_ectopic_beats_and_af_on_synthetic_records() -> None:
    """PVCs (15 %), AF; single leads (II, V1, V5) and all 12 leads together."""
    single = twelve = None
    for seed in range(3):
        for cfg in (SynthConfig(hr_bpm=70, pvc_rate=0.15, seed=seed),
                    SynthConfig(rhythm="afib", hr_bpm=110, seed=seed)):
            syn = synthesize(cfg, 30.0)
            s = match_peaks(syn.r_peaks, detect_r_peaks(syn.record.signal, 500.0), tolerance=0.075 * 500)
            twelve = s if twelve is None else twelve + s
            for lead in ("II", "V1", "V5"):
                s = match_peaks(syn.r_peaks, detect_r_peaks(syn.record.lead(lead), 500.0), tolerance=0.075 * 500)
                single = s if single is None else single + s
    assert twelve is not None and single is not None
    assert twelve.sensitivity >= 0.995 and twelve.ppv >= 0.995, twelve
    assert single.sensitivity >= 0.98 and single.ppv >= 0.99, single


def test_flat_and_nan_input_give_no_beats_and_no_crash() -> None:
    assert detect_r_peaks(np.zeros(5000), 500.0).size == 0
    assert detect_r_peaks(np.full((2, 5000), np.nan), 500.0).size == 0
    x = synthesize(SynthConfig(hr_bpm=70), 10.0).record.lead("II").astype(np.float64)
    x[2000:2600] = np.nan
    peaks = detect_r_peaks(x, 500.0)
    assert peaks.size >= 9 and not np.any((peaks >= 2000) & (peaks < 2600))


def test_mitbih_100_target(shared_ecg: Path) -> None:
    import wfdb

    base = shared_ecg / "mitdb" / "100"
    rec = wfdb.rdrecord(str(base))
    peaks = detect_r_peaks(rec.p_signal.T, rec.fs)
    score = match_peaks(wfdb_beats(base), peaks, tolerance=0.15 * rec.fs)
    assert score.sensitivity >= 0.995 and score.ppv >= 0.995, score


def test_cpsc2019_noisy_records(shared_ecg: Path) -> None:
    """The issue's target is Se and PPV >= 0.95; measured 0.951 / 0.951 (NeuroKit2 'neurokit': 0.823 / 0.914 on
    the same records, see benchmarks/dsp_bench.py). Both sit one beat above the target (370 TP, 19 FN, 19 FP)."""
    total = None
    for _name, x, ref in cpsc2019_records(shared_ecg):
        s = match_peaks(ref, detect_r_peaks(x, 500.0), tolerance=0.075 * 500)
        total = s if total is None else total + s
    assert total is not None
    assert total.sensitivity >= 0.95 and total.ppv >= 0.95, total


def test_cpsc2021_holter_excerpts(shared_ecg: Path) -> None:
    from uniecg_edge.wfdb_io import read_record

    heads = sorted((shared_ecg / "cpsc2021").glob("*.hea"))
    if not heads:
        pytest.skip("no CPSC 2021 records")
    total = None
    for head in heads:
        rec = read_record(head)
        s = match_peaks(wfdb_beats(head.with_suffix("")), detect_r_peaks(rec.signal, rec.fs), 0.15 * rec.fs)
        total = s if total is None else total + s
    assert total is not None
    assert total.sensitivity >= 0.99 and total.ppv >= 0.99, total


def test_long_records_are_refined_in_segments_without_seams() -> None:
    from uniecg_edge.dsp import QrsDetectorConfig

    syn = synthesize(SynthConfig(hr_bpm=90, seed=11), 120.0)
    x = syn.record.signal
    short_segments = QrsDetectorConfig(segment_s=17.0, segment_overlap_s=5.0)
    seg = detect_r_peaks(x, 500.0, short_segments)
    whole = detect_r_peaks(x, 500.0)
    assert np.all(np.diff(seg) > 0.2 * 500)  # no beat twice across a border
    assert match_peaks(syn.r_peaks, seg, tolerance=25).to_dict() == match_peaks(syn.r_peaks, whole, 25).to_dict()
    assert match_peaks(syn.r_peaks, seg, tolerance=25).fn == _cut_at_edges(syn.r_peaks, x.shape[1])
