"""Einthoven and Goldberger hold exactly in every synthetic record, noise included."""

from __future__ import annotations

import numpy as np
import pytest

from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.synth import CONDUCTIONS, RHYTHMS, NoiseConfig, SynthConfig, synthesize

NOISY = NoiseConfig(baseline_mv=0.3, mains_mv=0.1, emg_mv=0.05, motion_mv=0.5, motion_events_per_min=30.0)


@pytest.mark.parametrize("conduction", list(CONDUCTIONS))
@pytest.mark.parametrize("rhythm", list(RHYTHMS))
def test_limb_lead_relations_are_exact_for_every_rhythm_with_noise(rhythm: str, conduction: str) -> None:
    config = SynthConfig(
        rhythm=rhythm, conduction=conduction, noise=NOISY, pvc_rate=0.1, pac_rate=0.1, st_shift_mv=0.2, seed=7
    )
    record = synthesize(config, 10.0).record
    assert record.leads == STANDARD_LEADS and record.signal.dtype == np.float32
    s = record.signal.astype(np.float64)
    lead_i, lead_ii, lead_iii, avr, avl, avf = s[:6]
    assert np.max(np.abs(lead_iii - (lead_ii - lead_i))) < 1e-5
    assert np.max(np.abs(avr + (lead_i + lead_ii) / 2.0)) < 1e-5
    assert np.max(np.abs(avl - (lead_i - lead_ii / 2.0))) < 1e-5
    assert np.max(np.abs(avf - (lead_ii - lead_i / 2.0))) < 1e-5
    # The noise really is in the limb leads (so the relations were tested on noisy data).
    clean = synthesize(SynthConfig(**{**config.__dict__, "noise": NoiseConfig()}), 10.0).record.signal
    assert np.std(s[:6] - clean[:6], axis=1).min() > 0.02


def test_every_lead_carries_signal() -> None:
    signal = synthesize(SynthConfig(), 5.0).record.signal
    peak_to_peak = signal.max(axis=1) - signal.min(axis=1)
    assert np.all(peak_to_peak > 0.1), dict(zip(STANDARD_LEADS, peak_to_peak.round(2), strict=True))
