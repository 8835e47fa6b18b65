"""Waveform shapes: frontal axis, realistic amplitudes, bundle branch blocks, ST shifts, age and sex."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.synth import SynthConfig, synthesize

FS = 500.0
LEAD = {name: i for i, name in enumerate(STANDARD_LEADS)}


def _qrs_window(result, beat: int = 1) -> slice:
    onset = int(result.truth["qrs_onsets"][beat])
    return slice(onset - 5, onset + int(result.truth["qrs_ms"] * FS / 1000.0) + 5)


def _axis(result, net: str) -> float:
    s = result.record.signal.astype(np.float64)
    w = _qrs_window(result)
    seg_i, seg_avf = s[LEAD["I"], w], s[LEAD["aVF"], w]
    if net == "amplitude":
        i_net, avf_net = seg_i.max() + seg_i.min(), seg_avf.max() + seg_avf.min()
    else:
        i_net, avf_net = seg_i.sum(), seg_avf.sum()
    return math.degrees(math.atan2(2.0 * avf_net / math.sqrt(3.0), i_net))


@pytest.mark.parametrize("conduction", ["normal", "rbbb", "lbbb"])
@pytest.mark.parametrize("axis", [-30, -15, 0, 15, 30, 45, 60, 75, 90, 105, 120])
def test_frontal_axis_from_i_and_avf_matches_setting(axis: int, conduction: str) -> None:
    result = synthesize(SynthConfig(axis_deg=axis, conduction=conduction, seed=axis + 40), 3.0)
    assert abs(_axis(result, "amplitude") - axis) < 10.0
    assert abs(_axis(result, "area") - axis) < 3.0


def test_axis_statements_follow_the_axis() -> None:
    assert "left axis deviation" in synthesize(SynthConfig(axis_deg=-60), 3.0).truth["statements"]
    assert "right axis deviation" in synthesize(SynthConfig(axis_deg=120), 3.0).truth["statements"]
    assert not {"left axis deviation", "right axis deviation"} & set(
        synthesize(SynthConfig(), 3.0).truth["statements"]
    )


def test_amplitudes_are_those_of_an_adult_ecg() -> None:
    result = synthesize(SynthConfig(hrv_scale=0.0), 4.0)
    s = result.record.signal
    r = int(result.r_peaks[1])
    lead_ii = s[LEAD["II"]]
    assert 0.9 < lead_ii[r] < 1.8  # R in II
    onset = int(result.truth["qrs_onsets"][1])
    p_wave = lead_ii[onset - int(0.16 * FS) : onset]
    assert 0.08 < p_wave.max() < 0.3
    qt = int(result.truth["qt_ms"] * FS / 1000.0)
    t_wave = lead_ii[onset + int(0.12 * FS) : onset + qt]
    assert 0.15 < t_wave.max() < 0.6
    assert s[LEAD["aVR"], r] < -0.5  # aVR looks at the heart from the right: inverted
    # R-wave progression: V1 mostly negative, V5/V6 mostly positive.
    w = _qrs_window(result)
    v1, v6 = s[LEAD["V1"], w], s[LEAD["V6"], w]
    assert -v1.min() > 2 * v1.max() and v6.max() > 3 * -v6.min()
    assert 0.5 < np.ptp(s[LEAD["V2"], w]) < 3.0


def test_default_qt_follows_bazett_and_sex() -> None:
    for hr in (50, 72, 120):
        truth = synthesize(SynthConfig(hr_bpm=hr, hrv_scale=0.0), 10.0).truth
        assert abs(truth["qt_ms"] - 400.0 * math.sqrt(60.0 / hr)) < 1.0
        assert abs(truth["qtc_ms"] - 400.0) < 5.0
    female = synthesize(SynthConfig(sex="female", age=70), 4.0)
    male = synthesize(SynthConfig(sex="M", age=25), 4.0)
    assert female.truth["qt_ms"] > male.truth["qt_ms"]
    assert np.ptp(female.record.signal[LEAD["II"]]) < np.ptp(male.record.signal[LEAD["II"]])
    assert female.record.meta["sex"] == "F" and female.record.meta["age"] == 70.0
    assert synthesize(SynthConfig(qt_ms=450.0), 4.0).truth["qt_ms"] == 450.0


def _qrs_width_ms(signal: np.ndarray, r: int) -> float:
    x = signal[[0, 1, 6, 7, 8, 9, 10, 11]].astype(np.float64)
    velocity = np.sqrt((np.diff(x, axis=1) ** 2).sum(axis=0))
    lo = r - int(0.15 * FS)
    seg = velocity[lo : r + int(0.15 * FS)]
    above = seg > 0.06 * seg.max()
    gap = int(0.012 * FS)
    a = b = r - lo
    while a > 0 and above[max(0, a - gap) : a].any():
        a -= 1
    while b < seg.size - 1 and above[b + 1 : b + 1 + gap].any():
        b += 1
    return (b - a) / FS * 1000.0


@pytest.mark.parametrize(("conduction", "statement"), [("rbbb", "right"), ("lbbb", "left")])
def test_bundle_branch_blocks_widen_qrs_with_their_lead_patterns(conduction: str, statement: str) -> None:
    bbb = synthesize(SynthConfig(conduction=conduction, axis_deg=30, hrv_scale=0.0), 4.0)
    normal = synthesize(SynthConfig(axis_deg=30, hrv_scale=0.0), 4.0)
    assert bbb.truth["qrs_ms"] >= 120 and f"{statement} bundle branch block" in bbb.truth["statements"]
    assert _qrs_width_ms(bbb.record.signal, int(bbb.r_peaks[1])) >= 120
    assert _qrs_width_ms(normal.record.signal, int(normal.r_peaks[1])) < 110
    assert set(bbb.beat_labels) == {conduction[0].upper()}
    s = bbb.record.signal
    w = _qrs_window(bbb)
    v1, v6, lead_i = s[LEAD["V1"], w], s[LEAD["V6"], w], s[LEAD["I"], w]
    if conduction == "rbbb":
        # rsR' in V1: the last big deflection is positive; slurred terminal S in I and V6.
        late = slice(int(0.6 * v1.size), v1.size)
        assert v1[late].max() > 0.3 and v1.min() < -0.2
        assert lead_i[late].min() < -0.1 and v6[late].min() < -0.1
    else:
        # QS in V1, broad monophasic R without septal q in I and V6, discordant T.
        assert -v1.min() > 4 * max(v1.max(), 0.01)
        first = slice(0, int(0.3 * v6.size))
        assert v6[first].min() > -0.05 and lead_i[first].min() > -0.05
        onset = int(bbb.truth["qrs_onsets"][1])
        t_zone = slice(onset + int(0.2 * FS), onset + int(bbb.truth["qt_ms"] * FS / 1000.0))
        assert s[LEAD["V6"], t_zone].min() < -0.1 and s[LEAD["V1"], t_zone].max() > 0.1


@pytest.mark.parametrize(
    ("territory", "most_elevated"),
    [("anterior", {"V2", "V3"}), ("inferior", {"III", "aVF"}), ("lateral", {"V4", "V5"}), ("diffuse", {"V3"})],
)
def test_st_shift_shows_in_its_territory_and_matches_truth(territory: str, most_elevated: set[str]) -> None:
    base = SynthConfig(hrv_scale=0.0, seed=3)
    shifted = synthesize(SynthConfig(**{**base.__dict__, "st_shift_mv": 0.2, "st_territory": territory}), 4.0)
    plain = synthesize(base, 4.0)
    onset = int(shifted.truth["qrs_onsets"][1])
    j60 = onset + int((shifted.truth["qrs_ms"] + 60.0) * FS / 1000.0)
    measured = shifted.record.signal[:, j60].astype(np.float64) - plain.record.signal[:, j60]
    truth = np.array([shifted.truth["st_mv"][lead] for lead in STANDARD_LEADS])
    assert np.max(np.abs(measured - truth)) < 0.01
    assert abs(measured.max() - 0.2) < 0.01
    assert STANDARD_LEADS[int(np.argmax(measured))] in most_elevated
    assert measured.min() < 0  # reciprocal depression somewhere
    depressed = synthesize(SynthConfig(**{**base.__dict__, "st_shift_mv": -0.15, "st_territory": territory}), 4.0)
    assert f"ST depression, {territory}" in depressed.truth["statements"]


def _p_wave(result, lead: str, beat: int = 2) -> np.ndarray:
    """Lead ``lead`` from the beat's P onset to its QRS onset (the P wave and the PR segment)."""
    s = result.record.signal[LEAD[lead]].astype(np.float64)
    p_onset = int(result.truth["p_onsets"][beat])
    qrs_onset = int(next(q for q in result.truth["qrs_onsets"] if q > p_onset))
    return s[p_onset:qrs_onset] - s[p_onset]


def _t_peak(result, lead: str, beat: int = 2) -> float:
    s = result.record.signal[LEAD[lead]].astype(np.float64)
    onset = int(result.truth["qrs_onsets"][beat])
    qt = int(result.truth["qt_ms"] * FS / 1000.0)
    segment = s[onset + qt // 2:onset + qt]
    return float(np.abs(segment - s[onset]).max())


def test_p_and_t_wave_shape_settings_reshape_only_their_waves() -> None:
    base = dict(hr_bpm=60.0, pr_ms=200.0, seed=7, hrv_scale=0.0)
    reference = synthesize(SynthConfig(**base), 5.0)
    taller = synthesize(SynthConfig(**base, p_scale=2.0), 5.0)
    assert np.ptp(_p_wave(taller, "II")) == pytest.approx(2.0 * np.ptp(_p_wave(reference, "II")), rel=0.02)
    assert np.array_equal(taller.r_peaks, reference.r_peaks)
    assert _t_peak(taller, "II") == pytest.approx(_t_peak(reference, "II"), rel=0.01)

    flat_t = synthesize(SynthConfig(**base, t_scale=0.3), 5.0)
    assert _t_peak(flat_t, "II") == pytest.approx(0.3 * _t_peak(reference, "II"), rel=0.05)
    assert np.allclose(_p_wave(flat_t, "II"), _p_wave(reference, "II"), atol=1e-4)

    def width_above_half(result) -> int:
        p = np.abs(_p_wave(result, "II"))
        return int((p >= 0.5 * p.max()).sum())

    wide = synthesize(SynthConfig(**base, p_duration_ms=130.0), 5.0)
    assert width_above_half(wide) > width_above_half(reference) * 1.15

    turned = synthesize(SynthConfig(**base, p_axis_shift_deg=-40.0), 5.0)  # towards lead I, away from III
    ratio = [np.ptp(_p_wave(r, "I")) / np.ptp(_p_wave(r, "III")) for r in (reference, turned)]
    assert ratio[1] > 1.5 * ratio[0]


@pytest.mark.parametrize("field, value", [("p_scale", -0.1), ("p_scale", 3.5), ("p_duration_ms", 40.0),
                                          ("p_axis_shift_deg", 90.0), ("t_scale", 4.0)])
def test_wave_shape_settings_out_of_range_are_refused(field: str, value: float) -> None:
    from uniecg_edge.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        SynthConfig(**{field: value})
