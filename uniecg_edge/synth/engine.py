"""The block renderer behind ``synthesize`` and ``SynthStream``: events → dipole waves → leads, block by block.

Rendering happens in fixed blocks of ``block_samples``; everything in a block is a function of absolute sample
indices (waves, atrial activity, sinusoidal noise, motion events) or carries its state forward (EMG filter),
so the output does not depend on how it is read, and ``synthesize`` equals a stream read from sample 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import SynthConfig
from .morphology import BeatMorphology
from .noise import ElectrodeNoise
from .projection import project
from .rhythm import MAX_EVENT_LAG_S, RHYTHMS, AtrialEvent, Respiration, VentricularEvent
from .waves import WaveBuffer

BLOCK_SAMPLES = 1024
# Events are pulled this far past a block's end; with the lag bound and waves starting at most ~0.2 s before
# their event, no later event can reach back into the block.
LOOKAHEAD_S = MAX_EVENT_LAG_S + 0.5

_ORIGIN_LABELS = {"pac": "A", "pvc": "V", "junctional": "j", "ventricular_escape": "E"}


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


@dataclass(frozen=True)
class BeatTruth:
    """One ventricular complex as rendered: R-peak sample, label and QRS-onset sample."""

    r_peak: int
    label: str
    qrs_onset: int


class SynthEngine:
    """Renders consecutive (12, ``block_samples``) float32 blocks for one config."""

    def __init__(self, config: SynthConfig, block_samples: int = BLOCK_SAMPLES, keep_truth: bool = False) -> None:
        self.config = config
        self.fs = float(config.fs)
        self.block_samples = int(block_samples)
        self.keep_truth = keep_truth
        resp_phase = float(_rng(config.seed, 0).uniform(0.0, 2.0 * math.pi))
        self.respiration = Respiration(config.resp_rate_bpm / 60.0, resp_phase)
        self.rhythm = RHYTHMS.get(config.rhythm)(config, _rng(config.seed, 1), self.respiration)
        self.morphology = BeatMorphology(config, self.rhythm.ventricular_rr_s, _rng(config.seed, 2))
        self.background = self.rhythm.atrial_background(_rng(config.seed, 3))
        self.noise = (
            None
            if config.noise.is_clean
            else ElectrodeNoise(config.noise, self.fs, config.seed, self.respiration.rate_hz, resp_phase)
        )
        self.waves = WaveBuffer(self.fs)
        self.pulled_until_s = -math.inf
        self.next_sample = 0
        self.beats: list[BeatTruth] = []
        self.p_onsets: list[int] = []

    def _add(self, event: AtrialEvent | VentricularEvent) -> None:
        gain = self.morphology.beat_gain(event.onset_s, self.respiration(event.onset_s))
        if isinstance(event, AtrialEvent):
            for wave in self.morphology.p_waves(event.onset_s, event.ectopic, gain):
                self.waves.add(wave)
            if self.keep_truth:
                self.p_onsets.append(round(event.onset_s * self.fs))
        else:
            waves, r_time = self.morphology.ventricular_waves(event.onset_s, event.ectopic_shape, gain)
            for wave in waves:
                self.waves.add(wave)
            if self.keep_truth:
                label = _ORIGIN_LABELS.get(event.origin, self.morphology.dominant.label)
                self.beats.append(BeatTruth(round(r_time * self.fs), label, round(event.onset_s * self.fs)))
        self.pulled_until_s = max(self.pulled_until_s, event.onset_s)

    def render_block(self) -> np.ndarray:
        """The next (12, block_samples) float32 block in ``STANDARD_LEADS`` order, mV."""
        first = self.next_sample
        n = self.block_samples
        horizon_s = (first + n) / self.fs + LOOKAHEAD_S
        while self.pulled_until_s < horizon_s:
            for event in self.rhythm.next_events():
                self._add(event)
        heart = np.zeros((3, n))
        self.waves.render(heart, first)
        if self.background is not None:
            self.background.render(heart, first, self.fs)
        electrodes = self.noise.render(first, n) if self.noise is not None else None
        block = project(heart, electrodes)
        self.waves.drop_before(first + n)
        self.next_sample = first + n
        return block
