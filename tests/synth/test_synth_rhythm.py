"""Rhythms: rates, irregularity, P waves, F waves, ectopic beats and AV blocks, checked on the output."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from uniecg_edge.errors import ConfigError
from uniecg_edge.synth import SynthConfig, synthesize

FS = 500.0


def _rate_bpm(r_peaks: np.ndarray, fs: float = FS) -> float:
    return 60.0 * fs / float(np.mean(np.diff(r_peaks)))


def _p_wave_average(record_signal: np.ndarray, r_peaks: np.ndarray) -> np.ndarray:
    """Lead II averaged over beats in the 300 ms before each R peak (P waves add up, f waves cancel)."""
    lead_ii = record_signal[1].astype(np.float64)
    windows = [lead_ii[r - 150 : r - 25] - lead_ii[r - 150] for r in r_peaks if r >= 150]
    return np.mean(windows, axis=0)


@pytest.mark.parametrize("hr", [40, 55, 72, 90, 110, 130, 150, 180])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinus_rate_from_r_peaks_matches_setting(hr: int, seed: int) -> None:
    result = synthesize(SynthConfig(hr_bpm=hr, seed=seed), 10.0)
    assert abs(_rate_bpm(result.r_peaks) - hr) < 1.0
    assert abs(result.truth["hr_bpm"] - hr) < 1.0
    assert set(result.beat_labels) == {"N"}
    assert len(result.r_peaks) == len(result.beat_labels)


def test_r_peaks_sit_on_the_r_waves_of_lead_ii() -> None:
    result = synthesize(SynthConfig(hr_bpm=80, seed=3), 10.0)
    lead_ii = result.record.signal[1]
    for r in result.r_peaks:
        lo, hi = max(r - 20, 0), min(r + 20, lead_ii.size)
        assert abs(lo + int(np.argmax(lead_ii[lo:hi])) - r) <= 2


def test_heart_rate_variability_is_present_but_modest() -> None:
    rr_ms = np.diff(synthesize(SynthConfig(hr_bpm=70, seed=4), 60.0).r_peaks) / FS * 1000.0
    rmssd = float(np.sqrt(np.mean(np.diff(rr_ms) ** 2)))
    assert 5.0 < rmssd < 80.0
    metronome = np.diff(synthesize(SynthConfig(hr_bpm=70, seed=4, hrv_scale=0.0), 60.0).r_peaks)
    assert np.ptp(metronome) <= 2  # sample rounding only


@pytest.mark.parametrize("seed", range(5))
def test_atrial_fibrillation_is_irregular_and_has_no_p_waves(seed: int) -> None:
    af = synthesize(SynthConfig(rhythm="afib", hr_bpm=80, seed=seed), 10.0)
    rr = np.diff(af.r_peaks)
    assert np.std(rr) / np.mean(rr) > 0.1
    assert af.truth["p_onsets"].size == 0 and af.truth["pr_ms"] is None
    sinus = synthesize(SynthConfig(hr_bpm=80, seed=seed), 10.0)
    p_sinus = _p_wave_average(sinus.record.signal, sinus.r_peaks)
    p_af = _p_wave_average(af.record.signal, af.r_peaks)
    assert np.ptp(p_sinus) > 0.08  # a P wave stands out in the average before R
    assert np.ptp(p_af) < 0.5 * np.ptp(p_sinus)
    # … yet the atria are not silent: fibrillatory waves of about fwave_mv, at 4-9 Hz, strongest in V1.
    no_f = synthesize(SynthConfig(rhythm="afib", hr_bpm=80, seed=seed, fwave_mv=0.0), 10.0)
    f_waves = af.record.signal.astype(np.float64) - no_f.record.signal
    assert np.array_equal(af.r_peaks, no_f.r_peaks)
    v1 = f_waves[6]
    assert 0.05 < np.percentile(v1, 99) - np.percentile(v1, 1) < 0.2
    freqs, power = sps.periodogram(v1, fs=FS)
    assert 4.0 < freqs[np.argmax(power)] < 9.0


@pytest.mark.parametrize(("hr", "ratio"), [(75, 4), (100, 3), (150, 2)])
def test_atrial_flutter_shows_sawtooth_f_waves_at_the_atrial_rate(hr: int, ratio: int) -> None:
    result = synthesize(SynthConfig(rhythm="aflutter", hr_bpm=hr, seed=1), 10.0)
    assert abs(_rate_bpm(result.r_peaks) - hr) < 1.0
    atrial = result.truth["atrial_rate_bpm"]
    assert abs(atrial - hr * ratio) < 1e-6 and 240 <= atrial <= 350
    # The F waves run through the whole record: lead II minus the ventricular complexes (the same config
    # without F waves) is periodic at the atrial rate with a sharp upstroke every 60/atrial s.
    no_f = synthesize(SynthConfig(rhythm="aflutter", hr_bpm=hr, seed=1, flutter_wave_mv=0.0), 10.0)
    atrial_part = result.record.signal[1].astype(np.float64) - no_f.record.signal[1]
    assert 0.2 < np.ptp(atrial_part) < 0.3
    troughs, _ = sps.find_peaks(-atrial_part, prominence=0.1)
    period = np.diff(troughs) / FS
    assert np.allclose(period, 60.0 / atrial, atol=0.004)
    # Inferior leads show the negative sawtooth: slow descent (most samples falling), fast rise.
    slope = np.diff(atrial_part)
    assert np.mean(slope < 0) > 0.6
    # And the F waves are visible in the record itself, between QRS complexes.
    lead_ii = result.record.signal[1]
    r0, r1 = result.r_peaks[2], result.r_peaks[3]
    gap = lead_ii[r0 + int(0.06 * FS) : r1 - int(0.06 * FS)]
    assert len(sps.find_peaks(-gap, prominence=0.08)[0]) >= ratio - 1


def _qrs_width_ms(signal: np.ndarray, r: int, fs: float = FS) -> float:
    """Width of the high-velocity region around R (spatial velocity of the 8 independent leads > 6 % of peak)."""
    x = signal[[0, 1, 6, 7, 8, 9, 10, 11]].astype(np.float64)
    velocity = np.sqrt((np.diff(x, axis=1) ** 2).sum(axis=0))
    lo = r - int(0.15 * fs)
    seg = velocity[lo : r + int(0.15 * fs)]
    above = seg > 0.06 * seg.max()
    gap = int(0.012 * fs)
    a = b = r - lo
    while a > 0 and above[max(0, a - gap) : a].any():
        a -= 1
    while b < seg.size - 1 and above[b + 1 : b + 1 + gap].any():
        b += 1
    return (b - a) / fs * 1000.0


def test_pvcs_are_wide_early_without_p_and_followed_by_a_compensatory_pause() -> None:
    result = synthesize(SynthConfig(hr_bpm=70, pvc_rate=0.25, seed=1, hrv_scale=0.0), 20.0)
    labels, peaks, onsets = result.beat_labels, result.r_peaks, result.truth["qrs_onsets"]
    rr0 = FS * 60.0 / 70.0
    pvcs = [i for i in range(1, len(labels) - 1) if labels[i] == "V" and labels[i - 1] == labels[i + 1] == "N"]
    assert len(pvcs) >= 2
    signal = result.record.signal
    narrow = max(_qrs_width_ms(signal, peaks[i]) for i in range(1, len(labels) - 1) if labels[i] == "N")
    p_onsets = result.truth["p_onsets"]
    for i in pvcs:
        assert _qrs_width_ms(signal, peaks[i]) > 1.4 * narrow
        assert onsets[i] - onsets[i - 1] < 0.75 * rr0  # premature
        assert abs((onsets[i + 1] - onsets[i - 1]) - 2 * rr0) <= 2  # full compensatory pause
        assert not np.any((p_onsets > onsets[i] - 0.3 * FS) & (p_onsets < onsets[i]))  # no P before it
    assert "premature ventricular complexes" in result.truth["statements"]


def test_pacs_are_early_narrow_preceded_by_p_and_reset_the_sinus_node() -> None:
    result = synthesize(SynthConfig(hr_bpm=70, pac_rate=0.25, seed=2, hrv_scale=0.0), 20.0)
    labels, peaks, onsets = result.beat_labels, result.r_peaks, result.truth["qrs_onsets"]
    rr0 = FS * 60.0 / 70.0
    pacs = [i for i in range(1, len(labels) - 1) if labels[i] == "A" and labels[i - 1] == labels[i + 1] == "N"]
    assert len(pacs) >= 2
    narrow = max(_qrs_width_ms(result.record.signal, peaks[i]) for i in range(len(labels)) if labels[i] == "N")
    p_onsets = result.truth["p_onsets"]
    for i in pacs:
        assert onsets[i] - onsets[i - 1] < 0.8 * rr0
        assert onsets[i + 1] - onsets[i - 1] < 1.9 * rr0  # not compensatory
        assert _qrs_width_ms(result.record.signal, peaks[i]) <= narrow + 4
        assert np.any((p_onsets > onsets[i] - 0.25 * FS) & (p_onsets < onsets[i] - 0.1 * FS))


def _pr_per_p(result) -> list[float | None]:
    """For each P wave: the PR interval (ms) to the QRS it leads to, or None when no QRS follows within 600 ms."""
    qrs = result.truth["qrs_onsets"]
    out: list[float | None] = []
    for p in result.truth["p_onsets"]:
        following = qrs[(qrs > p) & (qrs < p + 0.6 * FS)]
        nxt_p = result.truth["p_onsets"][result.truth["p_onsets"] > p]
        if following.size and (nxt_p.size == 0 or following[0] < nxt_p[0] + 0.3 * FS):
            out.append((following[0] - p) / FS * 1000.0)
        else:
            out.append(None)
    return out


def test_first_degree_av_block_has_a_long_constant_pr() -> None:
    result = synthesize(SynthConfig(rhythm="av_block_1", seed=0), 10.0)
    prs = [pr for pr in _pr_per_p(result) if pr is not None]
    assert result.truth["pr_ms"] > 200
    assert len(prs) >= len(result.r_peaks) - 1 and all(abs(pr - result.truth["pr_ms"]) <= 40 for pr in prs)
    assert "first degree AV block" in result.truth["statements"]


def test_mobitz_one_lengthens_pr_then_drops_a_beat() -> None:
    result = synthesize(SynthConfig(rhythm="av_block_2_mobitz1", hr_bpm=75, av_block_ratio=4, hrv_scale=0), 12.0)
    prs = _pr_per_p(result)
    dropped = [i for i, pr in enumerate(prs) if pr is None]
    assert len(dropped) >= 2
    for a, b in zip(dropped[:-1], dropped[1:], strict=True):
        group = prs[a + 1 : b]
        assert len(group) == 3 and all(y > x + 10 for x, y in zip(group[:-1], group[1:], strict=True))
        assert group[1] - group[0] > group[2] - group[1]  # shrinking increments
    assert _rate_bpm(result.r_peaks) < 75 * 0.85


def test_mobitz_two_drops_beats_with_a_constant_pr() -> None:
    result = synthesize(SynthConfig(rhythm="av_block_2_mobitz2", hr_bpm=80, av_block_ratio=3, hrv_scale=0), 12.0)
    prs = _pr_per_p(result)
    conducted = [pr for pr in prs if pr is not None]
    assert sum(pr is None for pr in prs) >= 4
    assert np.ptp(conducted) <= 4.0
    assert abs(_rate_bpm(result.r_peaks) - 80 * 2 / 3) < 6.0


def test_third_degree_av_block_dissociates_p_waves_from_an_escape_rhythm() -> None:
    result = synthesize(SynthConfig(rhythm="av_block_3", hr_bpm=80, escape_rate_bpm=38, seed=5), 20.0)
    assert abs(_rate_bpm(result.r_peaks) - 38) < 2.0
    assert len(result.truth["p_onsets"]) > 2 * len(result.r_peaks)
    # P-to-QRS distances wander: no fixed PR.
    onsets = result.truth["qrs_onsets"]
    p = result.truth["p_onsets"]
    last_p_before = [(q - p[p < q][-1]) / FS * 1000.0 for q in onsets if np.any(p < q)]
    assert np.std(last_p_before) > 50.0
    assert set(result.beat_labels) == {"E"}  # below 40/min the escape is ventricular (wide)
    junctional = synthesize(SynthConfig(rhythm="av_block_3", hr_bpm=80, escape_rate_bpm=50, seed=5), 10.0)
    assert set(junctional.beat_labels) == {"j"}


def test_unknown_names_raise_config_errors_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="sinus"):
        SynthConfig(rhythm="torsades")
    with pytest.raises(ConfigError, match="lbbb"):
        SynthConfig(conduction="wpw")
    with pytest.raises(ConfigError, match="anterior"):
        SynthConfig(st_territory="septal")
    with pytest.raises(ConfigError, match="hr_bpm"):
        SynthConfig(hr_bpm=0)
    with pytest.raises(ConfigError, match="hr_bps"):
        SynthConfig.from_dict({"hr_bps": 60})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"hr_bpm": 45}, ["sinus bradycardia"]),
        ({"hr_bpm": 130}, ["sinus tachycardia"]),
        ({"pr_ms": 260}, ["sinus rhythm", "first degree AV block"]),
        ({"rhythm": "afib"}, ["atrial fibrillation"]),
        ({"rhythm": "aflutter"}, ["atrial flutter"]),
        ({"rhythm": "av_block_2_mobitz2", "hr_bpm": 50}, ["sinus bradycardia", "second degree AV block, Mobitz II"]),
        ({"rhythm": "av_block_3"}, ["third degree AV block"]),
        ({"qt_ms": 520}, ["sinus rhythm", "prolonged QT"]),
    ],
)
def test_statements_name_the_findings(overrides: dict, expected: list[str]) -> None:
    assert synthesize(SynthConfig(**overrides), 10.0).truth["statements"] == expected
