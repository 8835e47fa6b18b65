"""Synthetic training examples: (ECG 12 x 5000 at 500 Hz in mV, evidence-based report, ground truth, hr, age, sex).

Example ``i`` of stream ``s`` under seed ``seed`` is a pure function of ``(seed, s, i)``: any example can be
rebuilt alone, in any order, on any machine, which is what makes the recipe resumable and its data reproducible.
Streams keep the uses apart: ``corpus`` (tokenizer), ``train`` (stage 1), ``pool`` (stage 2, whose text
embeddings are cached) and ``eval`` (held out).

The truth is measured on the 10 s window the model sees (rate and RR from the R peaks inside it, QTc by Bazett on
that RR, premature beats counted inside it), so every number a report states is true of the signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..leads import STANDARD_LEADS
from ..synth import SynthConfig, synthesize
from .augment import AugmentConfig, add_tremor, draw_boundary_rate, draw_morphology, draw_noise, jitter_gains
from .labels import findings_labels
from .reports import write_report
from .scenarios import draw_scenario

STREAMS = {"corpus": 0, "train": 1, "pool": 2, "eval": 3}
ST_LEAD_THRESHOLD_MV = 0.1  # leads whose ST shift reaches this are named in the report
NOISE_THRESHOLDS = {"baseline_mv": 0.15, "mains_mv": 0.025, "emg_mv": 0.02, "motion_mv": 0.12, "tremor_mv": 0.04}


@dataclass(frozen=True)
class DataConfig:
    """The examples' signal format, patient ranges and augmentation."""

    fs: float = 500.0
    duration_s: float = 10.0
    age_range: tuple[float, float] = (18.0, 90.0)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "age_range", tuple(float(v) for v in self.age_range))
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig(**self.augment))
        if self.fs != 500.0 or self.duration_s != 10.0:
            raise ConfigError("DataConfig: the model input is 10 s at 500 Hz (fs=500, duration_s=10)")
        low, high = self.age_range
        if not 0 <= low <= high <= 130:
            raise ConfigError(f"DataConfig: age_range must be within 0..130, got {self.age_range}")

    @property
    def n_samples(self) -> int:
        return int(round(self.fs * self.duration_s))


@dataclass
class TrainingExample:
    """One example; ``truth`` is JSON-ready (see :func:`window_truth`), ``truth['labels']`` its findings."""

    ecg: np.ndarray  # (12, 5000) float32, mV
    report: str
    truth: dict[str, Any]
    hr: float
    age: float
    sex: str
    r_peaks_s: tuple[float, ...] = ()  # the true R peaks inside the window, seconds from its start

    @property
    def labels(self) -> list[str]:
        return list(self.truth["labels"])


# draws kept apart from an example's main stream, so adding them changes nothing else
_SUBSTREAMS = {"tremor": 1, "morphology": 2, "boundary_rate": 3}


def example_rng(seed: int, stream: str, index: int, substream: str | None = None) -> np.random.Generator:
    if stream not in STREAMS:
        raise ConfigError(f"unknown data stream {stream!r} (known: {', '.join(STREAMS)})")
    key = [int(seed), STREAMS[stream], int(index)]
    if substream is not None:
        key.append(_SUBSTREAMS[substream])
    return np.random.default_rng(np.random.SeedSequence(key))


class ExampleSampler:
    """Deterministic synthetic examples: ``sampler.example("train", 17)`` is always the same example."""

    def __init__(self, seed: int, config: DataConfig | None = None) -> None:
        self.seed = int(seed)
        self.config = config or DataConfig()

    def example(self, stream: str, index: int, rhythm: str | None = None) -> TrainingExample:
        """Example ``index`` of ``stream``; ``rhythm`` forces a rhythm scenario (tests, evaluation)."""
        return self._simulate(stream, index, rhythm, {})

    def counterpart_ecg(self, stream: str, index: int, changes: dict[str, Any]) -> np.ndarray:
        """The ECG of example ``index`` of ``stream`` simulated with ``changes`` to its ``SynthConfig`` (e.g. another
        rhythm, :func:`.scenarios.rhythm_counterpart`): the same patient, findings, noise, window and lead gains."""
        return self._simulate(stream, index, None, changes).ecg

    def _simulate(self, stream: str, index: int, rhythm: str | None, changes: dict[str, Any]) -> TrainingExample:
        cfg = self.config
        rng = example_rng(self.seed, stream, index)
        draw = draw_scenario(rng, rhythm)
        age = round(float(rng.uniform(*cfg.age_range)))
        sex = "M" if float(rng.random()) < 0.5 else "F"
        noise = add_tremor(draw_noise(rng, cfg.augment), example_rng(self.seed, stream, index, "tremor"), cfg.augment)
        morphology = draw_morphology(example_rng(self.seed, stream, index, "morphology"), cfg.augment)
        rate = draw_boundary_rate(draw.rhythm, example_rng(self.seed, stream, index, "boundary_rate"), cfg.augment)
        synth_cfg = SynthConfig(
            **{**draw.overrides, **rate}, **morphology, noise=noise, fs=cfg.fs, seed=int(rng.integers(2**31 - 1)),
            age=age, sex=sex, hrv_scale=float(rng.uniform(0.3, 1.5)), resp_rate_bpm=float(rng.uniform(10.0, 22.0)),
        )
        if changes:
            synth_cfg = replace(synth_cfg, **changes)
        max_shift = int(round(cfg.augment.max_shift_s * cfg.fs))
        result = synthesize(synth_cfg, cfg.duration_s + max_shift / cfg.fs)
        offset = int(rng.integers(0, max_shift + 1))
        n = cfg.n_samples
        signal = result.record.signal[:, offset:offset + n]
        inside = (result.r_peaks >= offset) & (result.r_peaks < offset + n)
        r_peaks = result.r_peaks[inside] - offset
        beat_labels = [label for label, keep in zip(result.beat_labels, inside, strict=True) if keep]
        truth = window_truth(synth_cfg, result.truth, r_peaks, beat_labels, draw.rhythm)
        ecg = jitter_gains(signal, rng, cfg.augment)
        report = write_report(truth, rng)
        return TrainingExample(ecg=ecg, report=report, truth=truth, hr=float(truth["hr_bpm"]), age=float(age),
                               sex=sex, r_peaks_s=tuple(float(r) / cfg.fs for r in r_peaks))

    def with_augment(self, **changes: Any) -> ExampleSampler:
        """The same examples drawn with some augmentation settings changed (e.g. ``tremor_fraction``)."""
        return ExampleSampler(self.seed, replace(self.config, augment=replace(self.config.augment, **changes)))

    def examples(self, stream: str, start: int, count: int) -> list[TrainingExample]:
        return [self.example(stream, start + i) for i in range(count)]


def _rounded(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def window_truth(config: SynthConfig, synth_truth: dict[str, Any], r_peaks: np.ndarray, beat_labels: list[str],
                 scenario: str) -> dict[str, Any]:
    """What is true of the 10 s window: numbers rounded as a report states them, findings as labels."""
    rr = np.diff(r_peaks) / config.fs * 1000.0
    if rr.size == 0:
        raise ConfigError(f"synthetic window holds fewer than two beats ({config.rhythm}, {config.hr_bpm:.0f} bpm)")
    rr_ms = float(rr.mean())
    hr = 60_000.0 / rr_ms
    qt_ms = float(synth_truth["qt_ms"])
    qtc_ms = qt_ms / math.sqrt(rr_ms / 1000.0)
    st_mv = {lead: float(synth_truth["st_mv"][lead]) for lead in STANDARD_LEADS}
    primary_st = config.st_shift_mv != 0.0
    truth: dict[str, Any] = {
        "scenario": scenario,
        "rhythm": config.rhythm,
        "conduction": config.conduction,
        "hr_bpm": round(hr, 2),
        "rr_ms": round(rr_ms, 1),
        "rr_cv": round(float(rr.std() / rr_ms), 4),
        "pr_ms": None if synth_truth["pr_ms"] is None else round(float(synth_truth["pr_ms"]), 1),
        "qrs_ms": round(float(synth_truth["qrs_ms"]), 1),
        "qt_ms": round(qt_ms, 1),
        "qtc_ms": round(qtc_ms, 1),
        "axis_deg": round(float(config.axis_deg), 1),
        "atrial_rate_bpm": None if synth_truth["atrial_rate_bpm"] is None
        else round(float(synth_truth["atrial_rate_bpm"]), 1),
        "av_block_ratio": config.av_block_ratio if config.rhythm.startswith("av_block_2") else None,
        "st_shift_mv": round(float(config.st_shift_mv), 3),
        "st_territory": config.st_territory if primary_st else None,
        "st_elevation_leads": [k for k, v in st_mv.items() if primary_st and v >= ST_LEAD_THRESHOLD_MV],
        "st_depression_leads": [k for k, v in st_mv.items() if primary_st and v <= -ST_LEAD_THRESHOLD_MV],
        "n_beats": int(len(r_peaks)),
        "n_pvc": int(sum(label == "V" for label in beat_labels)),
        "n_pac": int(sum(label == "A" for label in beat_labels)),
        "noise": [name for name, limit in NOISE_THRESHOLDS.items() if getattr(config.noise, name) >= limit],
        "mains_hz": config.noise.mains_hz,
        "age": config.age,
        "sex": config.sex,
    }
    truth["labels"] = findings_labels(truth)
    return truth
