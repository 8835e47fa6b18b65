"""The beat clock: phase from R peaks and from a rate, its features, and the UNet's position-dependent terms."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.beat_clock import (
    CLOCK_POINTS,
    clock_features,
    clock_times,
    phase_from_peaks,
    pooled_features,
    regular_phase,
)
from uniecg_edge.model.unet import ConditionalUNet1d, UNetConfig

from .test_unet import patient, perturbed

WINDOW_S = 10.0


def wrapped(phase: np.ndarray) -> np.ndarray:
    """Distance of each phase from the nearest multiple of 2π."""
    return np.abs((phase + math.pi) % (2 * math.pi) - math.pi)


def clock_unet(harmonics: int = 3) -> ConditionalUNet1d:
    return ConditionalUNet1d(dataclasses.replace(UNetConfig.tiny(), beat_clock_harmonics=harmonics))


def test_phase_is_a_whole_turn_at_every_irregular_peak_and_rises_between() -> None:
    peaks = np.array([0.31, 0.95, 1.42, 2.40, 2.88, 3.90, 4.35, 5.61, 6.02, 7.30, 8.01, 9.12])  # AF-like RR
    phase = phase_from_peaks(peaks, WINDOW_S)
    t = clock_times(WINDOW_S)
    assert phase.shape == (CLOCK_POINTS,)
    assert np.all(np.diff(phase) > 0)
    at_peaks = np.interp(peaks, t, phase)
    # within 0.05 rad: the clock is sampled every 10 ms, and the peaks fall between its points
    assert np.allclose(at_peaks, 2 * math.pi * np.arange(len(peaks)), atol=0.05)
    # halfway between two peaks the clock is half a turn on, whatever the interval's length
    mid = (peaks[:-1] + peaks[1:]) / 2
    assert np.allclose(np.interp(mid, t, phase) % (2 * math.pi), math.pi, atol=0.05)


def test_phase_outside_the_first_and_last_peak_runs_at_the_mean_interval() -> None:
    peaks = np.array([2.0, 3.0, 4.5])  # mean RR 1.25 s
    phase = phase_from_peaks(peaks, WINDOW_S)
    t = clock_times(WINDOW_S)
    assert np.interp(0.75, t, phase) == pytest.approx(-2 * math.pi, abs=1e-3)  # 2.0 - 1.25
    assert np.interp(5.75, t, phase) == pytest.approx(3 * 2 * math.pi, abs=1e-3)  # 4.5 + 1.25


def test_phase_needs_two_peaks() -> None:
    with pytest.raises(ValueError, match="at least two R peaks"):
        phase_from_peaks(np.array([1.0]), WINDOW_S)


@pytest.mark.parametrize("hr", [48.0, 75.0, 130.0])
def test_regular_clock_puts_a_beat_every_60_over_hr_seconds(hr: float) -> None:
    phase = regular_phase(torch.tensor([[[hr]]]), WINDOW_S)[0].numpy()
    period = 60.0 / hr
    beats = period * (np.arange(int(WINDOW_S / period)) + 0.5)
    assert np.all(wrapped(np.interp(beats, clock_times(WINDOW_S), phase)) < 1e-3)
    # and it matches the clock built from those same beats as R peaks
    assert np.all(wrapped(phase_from_peaks(beats, WINDOW_S) - phase) < 1e-3)


def test_features_are_sines_then_cosines_of_each_harmonic_and_pool_by_box_average() -> None:
    phase = torch.linspace(0, 20, CLOCK_POINTS).unsqueeze(0)
    features = clock_features(phase, 3)
    assert features.shape == (1, CLOCK_POINTS, 6)
    assert torch.allclose(features[0, :, 1], torch.sin(2 * phase[0]))
    assert torch.allclose(features[0, :, 5], torch.cos(3 * phase[0]))
    pooled = pooled_features(features, 128)
    assert pooled.shape == (1, 128, 6)
    assert torch.allclose(pooled[0, 5], features[0, 40:48].mean(dim=0), atol=1e-6)
    with pytest.raises(ValueError, match="does not divide"):
        pooled_features(features, 100)


def test_diffusets_config_has_no_clock_and_terms_span_one_position() -> None:
    config = UNetConfig.tiny()
    assert config.beat_clock_harmonics == 0 and set(config.block_lengths()) == {1}
    model = ConditionalUNet1d(config)
    assert not any("beat_clock" in name for name, _ in model.named_parameters())


def test_clock_terms_span_each_block_length_and_follow_the_requested_rate() -> None:
    model = perturbed(clock_unet(), seed=6)
    cond, sex, age, hr = patient(2, model.config.cond_dim)
    terms = model.condition_terms(cond, sex, age, hr)
    assert [t.shape[1] for t in terms] == [128, 64, 32, 16, 32, 64, 128]
    assert [t.shape[2] for t in terms] == list(model.config.block_specs()[i].c_short for i in range(len(terms)))
    # the first block's term varies along the latent, and differently at 60 and 120 bpm
    same = model.condition_terms(cond[:1].repeat(2, 1, 1), sex[:1].repeat(2, 1, 1), age[:1].repeat(2, 1, 1),
                                 torch.tensor([60.0, 120.0]).view(2, 1, 1))
    assert same[0][0].std(dim=0).mean() > 1e-3
    assert (same[0][0] - same[0][1]).abs().max() > 1e-2


def test_fast_path_equals_cross_attention_with_the_clock() -> None:
    model = perturbed(clock_unet(), seed=7)
    cond, sex, age, hr = patient(3, model.config.cond_dim, seed=8)
    x, t = torch.randn(3, 4, 128), torch.tensor([0, 411, 999])
    peaks = [np.array([0.4, 1.3, 2.1, 3.3, 4.0, 5.2, 6.1, 7.0, 8.4, 9.3]), np.arange(0.2, 10, 0.5),
             np.arange(0.7, 10, 1.1)]
    phase = torch.from_numpy(np.stack([phase_from_peaks(p, WINDOW_S) for p in peaks]))
    with torch.no_grad():
        for given in (None, phase):
            fast = model(x, t, model.condition_terms(cond, sex, age, hr, phase=given))
            reference = model.forward_with_cross_attention(x, t, cond, sex, age, hr, phase=given)
            assert (fast - reference).abs().max() < 1e-5
        regular = model(x, t, model.condition_terms(cond, sex, age, hr))
        true_beats = model(x, t, model.condition_terms(cond, sex, age, hr, phase=phase))
    assert (regular - true_beats).abs().max() > 1e-3  # the phase reaches the output


def test_clock_weights_start_at_zero_and_draw_nothing_from_the_global_rng() -> None:
    torch.manual_seed(0)
    plain = ConditionalUNet1d(UNetConfig.tiny())
    after_plain = torch.rand(4)
    torch.manual_seed(0)
    clocked = clock_unet()
    after_clocked = torch.rand(4)
    assert torch.equal(after_plain, after_clocked)
    clock_params = {n: p for n, p in clocked.state_dict().items() if n.endswith("beat_clock")}
    assert len(clock_params) == clocked.config.num_blocks
    assert all(not p.any() for p in clock_params.values())
    for name, value in plain.state_dict().items():
        assert torch.equal(value, clocked.state_dict()[name]), name


def test_clock_survives_save_and_load(tmp_path) -> None:
    model = perturbed(clock_unet(2), seed=9)
    loaded = ConditionalUNet1d.from_pretrained(model.save_pretrained(tmp_path / "unet")).eval()
    assert loaded.config.beat_clock_harmonics == 2
    cond, sex, age, hr = patient(2, model.config.cond_dim)
    x, t = torch.randn(2, 4, 128), torch.tensor([3, 700])
    with torch.no_grad():
        assert torch.equal(model(x, t, model.condition_terms(cond, sex, age, hr)),
                           loaded(x, t, loaded.condition_terms(cond, sex, age, hr)))


@pytest.mark.parametrize("kwargs", [{"beat_clock_harmonics": -1}, {"beat_clock_harmonics": 1.5},
                                    {"beat_clock_window_s": 0.0}, {"beat_clock_window_s": float("nan")}])
def test_invalid_clock_settings_raise_config_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="beat_clock"):
        UNetConfig(**kwargs)  # type: ignore[arg-type]
