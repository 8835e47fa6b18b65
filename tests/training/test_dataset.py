from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from uniecg_edge.dsp import analyze_record
from uniecg_edge.errors import ConfigError
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.record import EcgRecord
from uniecg_edge.training.augment import AugmentConfig
from uniecg_edge.training.dataset import DataConfig, ExampleSampler
from uniecg_edge.training.labels import ALL_LABELS
from uniecg_edge.training.scenarios import RHYTHM_SCENARIOS

N_COVERAGE = 300


@pytest.fixture(scope="module")
def sampled() -> list:
    sampler = ExampleSampler(seed=3)
    return [sampler.example("train", i) for i in range(N_COVERAGE)]


def test_an_example_is_a_pure_function_of_seed_stream_and_index() -> None:
    a, b = ExampleSampler(7), ExampleSampler(7)
    first = a.example("train", 11)
    a.example("train", 3)  # drawing others in between changes nothing
    again = a.example("train", 11)
    other_instance = b.example("train", 11)
    for ex in (again, other_instance):
        assert np.array_equal(ex.ecg, first.ecg) and ex.report == first.report and ex.truth == first.truth
    assert not np.array_equal(ExampleSampler(8).example("train", 11).ecg, first.ecg)
    assert not np.array_equal(a.example("pool", 11).ecg, first.ecg)
    with pytest.raises(ConfigError, match="stream"):
        a.example("nope", 0)


def test_examples_have_the_model_input_format_and_exact_limb_relations(sampled: list) -> None:
    for ex in sampled[:40]:
        assert ex.ecg.shape == (12, 5000) and ex.ecg.dtype == np.float32 and np.isfinite(ex.ecg).all()
        lead = {name: ex.ecg[i].astype(np.float64) for i, name in enumerate(STANDARD_LEADS)}
        assert np.allclose(lead["III"], lead["II"] - lead["I"], atol=1e-5)
        assert np.allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=1e-5)
        assert np.allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-5)
        assert ex.sex in ("M", "F") and 18 <= ex.age <= 90 and ex.hr == ex.truth["hr_bpm"]


def test_every_rhythm_and_finding_occurs_with_ages_sexes_and_noise(sampled: list) -> None:
    counts = Counter(label for ex in sampled for label in ex.labels)
    missing = [label for label in ALL_LABELS if counts[label] == 0]
    assert not missing, f"labels never sampled in {N_COVERAGE} examples: {missing}"
    noise = Counter(n for ex in sampled for n in ex.truth["noise"])
    assert set(noise) == {"baseline_mv", "mains_mv", "emg_mv", "motion_mv"}
    assert any(not ex.truth["noise"] for ex in sampled)  # clean records too
    assert {ex.sex for ex in sampled} == {"M", "F"}
    ages = [ex.age for ex in sampled]
    assert min(ages) < 35 and max(ages) > 75


def test_labels_are_read_from_the_truth_of_the_window(sampled: list) -> None:
    for ex in sampled:
        t = ex.truth
        if "sinus_bradycardia" in ex.labels:
            assert t["hr_bpm"] < 60
        if "sinus_tachycardia" in ex.labels:
            assert t["hr_bpm"] > 100
        assert ("pvc" in ex.labels) == (t["n_pvc"] > 0)
        assert ("pac" in ex.labels) == (t["n_pac"] > 0)
        assert ("left_axis_deviation" in ex.labels) == (t["axis_deg"] < -30)
        if t["rhythm"] in ("afib", "aflutter", "av_block_3"):
            assert t["pr_ms"] is None
        # the rate is the R peaks' rate inside the 10 s window
        assert abs(t["hr_bpm"] - 60_000 / t["rr_ms"]) < 0.5


@pytest.mark.parametrize("rhythm", list(RHYTHM_SCENARIOS))
def test_each_rhythm_scenario_can_be_forced(rhythm: str) -> None:
    ex = ExampleSampler(1).example("eval", 0, rhythm=rhythm)
    assert ex.truth["scenario"] == rhythm
    assert ex.labels[0] in ALL_LABELS[:9]


def test_augmentation_changes_amplitude_and_timing_and_can_be_switched_off() -> None:
    plain = DataConfig(augment=AugmentConfig.none())
    clean = ExampleSampler(5, plain).example("train", 0)
    assert clean.truth["noise"] == []
    augmented = [ExampleSampler(5).example("train", i) for i in range(12)]
    peak = [float(np.abs(ex.ecg[1]).max()) for ex in augmented]
    assert max(peak) / min(peak) > 1.2  # amplitude scaling and gain jitter spread the voltages
    with pytest.raises(ConfigError):
        AugmentConfig(amplitude_range=(1.2, 0.8))
    with pytest.raises(ConfigError):
        DataConfig(duration_s=5.0)


def _with_and_without(**changes: float) -> list[tuple]:
    """Examples 0-3 drawn plainly and with the augmentation ``changes``: the same rhythm, rate and labels."""
    plain = ExampleSampler(5)
    changed = plain.with_augment(**changes)
    pairs = [(plain.example("train", i), changed.example("train", i)) for i in range(4)]
    for a, b in pairs:
        assert a.truth["rhythm"] == b.truth["rhythm"] and a.truth["labels"] == b.truth["labels"]
        assert a.truth["hr_bpm"] == b.truth["hr_bpm"] and a.truth["axis_deg"] == b.truth["axis_deg"]
    assert np.array_equal(plain.with_augment(**{k: 0.0 for k in changes}).example("train", 2).ecg,
                          plain.example("train", 2).ecg)  # a zero fraction leaves every example as it was
    return pairs


def test_tremor_augmentation_adds_only_a_tremor_to_the_same_example() -> None:
    from scipy import signal as sps

    for a, b in _with_and_without(tremor_fraction=1.0):
        added = (b.ecg - a.ecg).astype(np.float64)
        freqs, power = sps.periodogram(added[1], fs=500.0)
        assert 3.5 < freqs[np.argmax(power)] < 10.5  # in AugmentConfig.tremor_hz_range
        assert np.allclose(added[2], added[1] - added[0], atol=1e-5)
    shaky = ExampleSampler(5).with_augment(tremor_fraction=1.0)
    with_tremor = [ex for ex in (shaky.example("train", i) for i in range(8)) if "tremor_mv" in ex.truth["noise"]]
    assert with_tremor and all("tremor" in ex.report for ex in with_tremor)  # the report names the artefact
    with pytest.raises(ConfigError, match="tremor_fraction"):
        AugmentConfig(tremor_fraction=1.5)
    with pytest.raises(ConfigError, match="tremor_hz_range"):
        AugmentConfig(tremor_hz_range=(2.0, 9.0))


def test_morphology_augmentation_reshapes_p_and_t_of_the_same_example() -> None:
    from uniecg_edge.training.augment import MORPHOLOGY_RANGES, draw_morphology

    for a, b in _with_and_without(morphology_fraction=1.0):
        assert a.truth["qrs_ms"] == b.truth["qrs_ms"] and not np.array_equal(a.ecg, b.ecg)
        assert np.allclose(b.ecg[2], b.ecg[1] - b.ecg[0], atol=1e-5)

    config = AugmentConfig(morphology_fraction=1.0)
    rng = np.random.default_rng(0)
    draws = [draw_morphology(rng, config) for _ in range(200)]
    for name, field in MORPHOLOGY_RANGES.items():
        low, high = getattr(config, name)
        values = np.array([d[field] for d in draws])
        assert values.min() >= low and values.max() <= high and values.max() - values.min() > 0.5 * (high - low)
    some = [draw_morphology(rng, AugmentConfig(morphology_fraction=0.3)) for _ in range(400)]
    assert 0.2 < np.mean([bool(d) for d in some]) < 0.4
    with pytest.raises(ConfigError, match="morphology_fraction"):
        AugmentConfig(morphology_fraction=-0.1)
    with pytest.raises(ConfigError, match="t_scale_range"):
        AugmentConfig(t_scale_range=(1.5, 0.2))


def test_partial_view_keeps_one_stretch_and_blanks_the_rest() -> None:
    from uniecg_edge.training.augment import partial_view

    ecg = np.random.default_rng(1).standard_normal((12, 5000)).astype(np.float32) + 5.0  # never zero
    rng = np.random.default_rng(2)
    for _ in range(20):
        out = partial_view(ecg, rng, (3.0, 6.0))
        kept = np.flatnonzero(out[0])
        assert 1500 <= kept.size <= 3000 and kept[-1] - kept[0] + 1 == kept.size  # one stretch, 3-6 s
        assert np.array_equal(out[:, kept], ecg[:, kept]) and not out[:, out[0] == 0].any()
    assert np.array_equal(partial_view(ecg, rng, (10.0, 10.0)), ecg)


def test_a_rhythm_counterpart_is_the_same_record_with_only_the_rhythm_changed() -> None:
    from uniecg_edge.dsp.measure import rr_intervals_ms
    from uniecg_edge.dsp.rhythm import rr_irregularity
    from uniecg_edge.training.scenarios import rhythm_counterpart

    sampler = ExampleSampler(4)
    rng = np.random.default_rng(0)
    drawn = {i: sampler.example("train", i) for i in range(40)}
    first = {rhythm: next(i for i, ex in drawn.items() if ex.truth["rhythm"] == rhythm
                     and not {"pvc", "pac"} & set(ex.labels))
             for rhythm in ("sinus", "afib")}
    assert np.array_equal(sampler.counterpart_ecg("train", 3, {}), drawn[3].ecg)

    def irregularity(ecg: np.ndarray) -> float:
        peaks = np.asarray(analyze_record(EcgRecord(ecg, fs=500.0, leads=STANDARD_LEADS)).measurements.r_peaks)
        return float(rr_irregularity(rr_intervals_ms(peaks, 500.0)))

    for index, becomes, irregular in ((first["sinus"], "afib", True), (first["afib"], "sinus", False)):
        ex = drawn[index]
        changes = rhythm_counterpart(ex.truth["rhythm"], rng)
        assert changes is not None and changes["rhythm"] == becomes
        shown = ExampleSampler(4).counterpart_ecg("train", index, {**changes})
        assert shown.shape == ex.ecg.shape and not np.array_equal(shown, ex.ecg)
        assert np.allclose(shown[2], shown[1] - shown[0], atol=1e-5)
        assert (irregularity(shown) > 0.1) is irregular and (irregularity(ex.ecg) > 0.1) is not irregular
    assert rhythm_counterpart("aflutter", rng) is None and rhythm_counterpart("av_block_3", rng) is None


def test_boundary_rates_fill_the_gaps_around_60_and_100_bpm_and_the_label_follows_the_rate() -> None:
    from uniecg_edge.training.augment import SINUS_RATE_SCENARIOS, draw_boundary_rate

    plain, changed = ExampleSampler(5), ExampleSampler(5).with_augment(boundary_rate_fraction=1.0)
    moved = 0
    for i in range(16):
        a, b = plain.example("train", i), changed.example("train", i)
        assert a.truth["rhythm"] == b.truth["rhythm"] and a.truth["qrs_ms"] == b.truth["qrs_ms"]
        if a.truth["rhythm"] != "sinus":
            assert a.hr == b.hr
            continue
        moved += a.hr != b.hr
        label = next(label for label in b.labels if label.startswith("sinus"))
        assert label == ("sinus_bradycardia" if b.hr < 60 else "sinus_tachycardia" if b.hr > 100 else "sinus_rhythm")
    assert moved >= 2
    config = AugmentConfig(boundary_rate_fraction=1.0)
    rng = np.random.default_rng(0)
    rates = np.array([draw_boundary_rate(SINUS_RATE_SCENARIOS[0], rng, config)["hr_bpm"] for _ in range(300)])
    assert ((rates > 56) & (rates < 63)).any() and ((rates > 97) & (rates < 105)).any()
    assert draw_boundary_rate("atrial_fibrillation", rng, config) == {}
    assert draw_boundary_rate("sinus_rhythm", rng, AugmentConfig()) == {}
    with pytest.raises(ConfigError, match="boundary_rate_fraction"):
        AugmentConfig(boundary_rate_fraction=2.0)
