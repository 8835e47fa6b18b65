"""An independent detector (NeuroKit2, test-time only) finds the heart rate the generator claims."""

from __future__ import annotations

import numpy as np
import pytest

from uniecg_edge.synth import NoiseConfig, SynthConfig, synthesize


@pytest.mark.parametrize("hr", [55, 75, 120])
def test_neurokit_detects_the_true_r_peaks_and_rate_on_lead_ii(hr: int) -> None:
    nk = pytest.importorskip("neurokit2")
    fs = 500
    noise = NoiseConfig(baseline_mv=0.15, mains_mv=0.03, emg_mv=0.02)
    result = synthesize(SynthConfig(hr_bpm=hr, noise=noise, seed=hr), 20.0)
    lead_ii = result.record.signal[1].astype(np.float64)
    _, info = nk.ecg_peaks(nk.ecg_clean(lead_ii, sampling_rate=fs), sampling_rate=fs)
    detected = np.asarray(info["ECG_R_Peaks"])
    nk_hr = 60.0 * fs / np.mean(np.diff(detected))
    assert abs(nk_hr - result.truth["hr_bpm"]) < 1.0
    matched = [np.min(np.abs(detected - r)) <= 0.02 * fs for r in result.r_peaks]
    assert np.mean(matched) > 0.95
