"""Rhythms: when the atria and the ventricles activate, as a stream of events.

A rhythm model returns one cycle of events per ``next_events()`` call. Times are seconds from the record start;
an event never comes more than ``MAX_EVENT_LAG_S`` earlier than an event returned before it, which is what the
block renderer relies on. Ectopic beats (PVC, PAC) are drawn per cycle from ``pvc_rate``/``pac_rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..registry import Registry
from .atrial import AtrialBackground, FibrillatoryWaves, FlutterWaves
from .config import RR_JITTER_FRACTION, RSA_FRACTION, SynthConfig

MAX_EVENT_LAG_S = 1.0
FIRST_DEGREE_DEFAULT_PR_S = 0.28  # av_block_1 with a configured PR of 200 ms or less
WENCKEBACH_STEP_S = 0.10  # PR increments 100, 50, 25 ms … along a Mobitz I group
FLUTTER_FR_S = 0.24  # F wave to QRS onset
FLUTTER_ATRIAL_RANGE = (240.0, 350.0)


@dataclass(frozen=True)
class Respiration:
    """Breathing, shared by sinus arrhythmia, QRS amplitude and baseline wander."""

    rate_hz: float
    phase_rad: float

    def __call__(self, t: float) -> float:
        return math.sin(2.0 * math.pi * self.rate_hz * t + self.phase_rad)


@dataclass(frozen=True)
class AtrialEvent:
    onset_s: float  # P-wave onset
    ectopic: bool
    conducted: bool


@dataclass(frozen=True)
class VentricularEvent:
    onset_s: float  # QRS onset
    origin: str  # "conducted" | "pac" | "pvc" | "junctional" | "ventricular_escape"
    pr_s: float | None = None

    @property
    def ectopic_shape(self) -> bool:
        return self.origin in ("pvc", "ventricular_escape")


Event = AtrialEvent | VentricularEvent


class RhythmModel:
    """Base class. Subclasses set ``statement`` and implement ``next_events``."""

    statement: ClassVar[str] = ""

    def __init__(self, config: SynthConfig, rng: np.random.Generator, respiration: Respiration) -> None:
        self.config = config
        self.rng = rng
        self.respiration = respiration

    def next_events(self) -> list[Event]:
        raise NotImplementedError

    @property
    def ventricular_rr_s(self) -> float:
        """Nominal ventricular cycle, used for the QT of the record."""
        return 60.0 / self.config.hr_bpm

    @property
    def atrial_rate_bpm(self) -> float | None:
        return self.config.hr_bpm

    @property
    def pr_s(self) -> float | None:
        """PR of the conducted beats (the first of a Wenckebach group); None where P waves do not lead QRS."""
        return None

    def atrial_background(self, rng: np.random.Generator) -> AtrialBackground | None:
        return None


RHYTHMS: Registry[type[RhythmModel]] = Registry("rhythm")


class _SinusNode:
    """Sinus P-wave onsets: a clock modulated by breathing (sinus arrhythmia) and a 0.1 Hz (Mayer) wave, plus
    beat-to-beat jitter that does not accumulate, so the mean rate over a few beats stays at the set rate."""

    def __init__(
        self,
        rate_bpm: float,
        config: SynthConfig,
        rng: np.random.Generator,
        respiration: Respiration,
        first_qrs_lead_s: float,
    ) -> None:
        self.rr0 = 60.0 / rate_bpm
        self.rng = rng
        self.respiration = respiration
        slowing = min(1.0, 80.0 / rate_bpm)  # variability shrinks at fast rates
        self.rsa = RSA_FRACTION * config.hrv_scale * slowing
        self.mayer = 0.5 * RSA_FRACTION * config.hrv_scale * slowing
        self.mayer_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self.jitter_s = RR_JITTER_FRACTION * config.hrv_scale * self.rr0
        self.clock_s = float(rng.uniform(0.05, 1.0)) * self.rr0 - first_qrs_lead_s

    @property
    def next_onset_s(self) -> float:
        """Where the next P wave falls, before its jitter."""
        return self.clock_s

    def advance(self) -> float:
        """The next P onset; moves the node on by one cycle."""
        t = self.clock_s
        factor = 1.0 - self.rsa * self.respiration(t) + self.mayer * math.sin(0.2 * math.pi * t + self.mayer_phase)
        self.clock_s = t + self.rr0 * factor
        return t + self.jitter_s * float(np.clip(self.rng.standard_normal(), -3.0, 3.0))

    def reset(self, onset_s: float) -> None:
        self.clock_s = onset_s


class SinusRhythm(RhythmModel):
    """Sinus node, AV conduction (overridden by the AV blocks) and premature beats."""

    statement = "sinus rhythm"

    def __init__(self, config: SynthConfig, rng: np.random.Generator, respiration: Respiration) -> None:
        super().__init__(config, rng, respiration)
        self.node = _SinusNode(config.hr_bpm, config, rng, respiration, self.pr_s or config.pr_ms / 1000.0)
        self.pvc_coupling = float(rng.uniform(0.55, 0.65))  # unifocal PVCs keep their coupling interval
        self.pac_coupling = float(rng.uniform(0.60, 0.72))
        self.group_position = 0

    @property
    def pr_s(self) -> float | None:
        return self.config.pr_ms / 1000.0

    def conduct(self, position: int) -> float | None:
        """PR of the ``position``-th sinus P wave of a group, or None when it is blocked."""
        return self.pr_s

    def next_events(self) -> list[Event]:
        p = self.node.advance()
        pr = self.conduct(self.group_position)
        self.group_position = (self.group_position + 1) % self.config.av_block_ratio
        events: list[Event] = [AtrialEvent(p, False, pr is not None)]
        if pr is None:
            return events
        qrs = p + pr
        events.append(VentricularEvent(qrs, "conducted", pr))
        rr0 = self.node.rr0
        draw = float(self.rng.random())
        if draw < self.config.pvc_rate:
            # PVC; the next sinus P still fires but meets refractory ventricles: a full compensatory pause.
            jitter = 1.0 + 0.02 * float(self.rng.standard_normal())
            events.append(VentricularEvent(qrs + self.pvc_coupling * rr0 * jitter, "pvc"))
            events.append(AtrialEvent(self.node.advance(), False, False))
        elif draw < self.config.pvc_rate + self.config.pac_rate:
            # PAC: an early, different P, conducted; it resets the sinus node (no compensatory pause).
            pac = p + self.pac_coupling * rr0 * (1.0 + 0.02 * float(self.rng.standard_normal()))
            pac_pr = (self.pr_s or 0.16) * 1.05
            events.append(AtrialEvent(pac, True, True))
            events.append(VentricularEvent(pac + pac_pr, "pac", pac_pr))
            self.node.reset(pac + rr0 * float(self.rng.uniform(1.0, 1.08)))
        return sorted(events, key=lambda e: e.onset_s)


@RHYTHMS.register("sinus")
class _Sinus(SinusRhythm):
    pass


@RHYTHMS.register("av_block_1")
class FirstDegreeAvBlock(SinusRhythm):
    statement = "first degree AV block"

    @property
    def pr_s(self) -> float | None:
        return self.config.pr_ms / 1000.0 if self.config.pr_ms > 200.0 else FIRST_DEGREE_DEFAULT_PR_S


@RHYTHMS.register("av_block_2_mobitz1")
class MobitzOne(SinusRhythm):
    """Wenckebach: PR lengthens by shrinking steps until one P is blocked (``av_block_ratio``:ratio-1)."""

    statement = "second degree AV block, Mobitz I (Wenckebach)"

    def conduct(self, position: int) -> float | None:
        if position == self.config.av_block_ratio - 1:
            return None
        return self.config.pr_ms / 1000.0 + 2.0 * WENCKEBACH_STEP_S * (1.0 - 0.5**position)

    @property
    def ventricular_rr_s(self) -> float:
        ratio = self.config.av_block_ratio
        return 60.0 / self.config.hr_bpm * ratio / (ratio - 1)


@RHYTHMS.register("av_block_2_mobitz2")
class MobitzTwo(SinusRhythm):
    """Constant PR; every ``av_block_ratio``-th P wave is blocked."""

    statement = "second degree AV block, Mobitz II"

    def conduct(self, position: int) -> float | None:
        return None if position == self.config.av_block_ratio - 1 else self.config.pr_ms / 1000.0

    @property
    def ventricular_rr_s(self) -> float:
        ratio = self.config.av_block_ratio
        return 60.0 / self.config.hr_bpm * ratio / (ratio - 1)


@RHYTHMS.register("av_block_3")
class CompleteAvBlock(RhythmModel):
    """Sinus P waves at ``hr_bpm`` dissociated from an escape rhythm at ``escape_rate_bpm``."""

    statement = "third degree AV block"

    def __init__(self, config: SynthConfig, rng: np.random.Generator, respiration: Respiration) -> None:
        super().__init__(config, rng, respiration)
        self.node = _SinusNode(config.hr_bpm, config, rng, respiration, 0.0)
        self.escape_rr = 60.0 / config.escape_rate_bpm
        self.origin = "junctional" if config.escape_rate_bpm >= 40.0 else "ventricular_escape"
        self.next_escape_s = float(rng.uniform(0.05, 1.0)) * self.escape_rr

    @property
    def ventricular_rr_s(self) -> float:
        return self.escape_rr

    def next_events(self) -> list[Event]:
        if self.node.next_onset_s <= self.next_escape_s:
            return [AtrialEvent(self.node.advance(), False, False)]
        t = self.next_escape_s
        self.next_escape_s = t + self.escape_rr * (1.0 + 0.01 * float(self.rng.standard_normal()))
        return [VentricularEvent(t, self.origin)]


@RHYTHMS.register("afib")
class AtrialFibrillation(RhythmModel):
    """Irregularly irregular RR (log-normal, CV = ``af_irregularity``), no P waves, fibrillatory f waves."""

    statement = "atrial fibrillation"

    def __init__(self, config: SynthConfig, rng: np.random.Generator, respiration: Respiration) -> None:
        super().__init__(config, rng, respiration)
        self.rr0 = 60.0 / config.hr_bpm
        cv = config.af_irregularity
        self.sigma = math.sqrt(math.log1p(cv * cv))
        self.next_qrs_s = float(rng.uniform(0.05, 1.0)) * self.rr0

    @property
    def atrial_rate_bpm(self) -> float | None:
        return None

    def atrial_background(self, rng: np.random.Generator) -> AtrialBackground | None:
        return FibrillatoryWaves(self.config.fwave_mv, rng) if self.config.fwave_mv > 0 else None

    def _interval(self) -> float:
        rr = self.rr0 * math.exp(self.sigma * float(self.rng.standard_normal()) - 0.5 * self.sigma**2)
        return max(rr, 0.45 * self.rr0, 0.25)

    def next_events(self) -> list[Event]:
        t = self.next_qrs_s
        events: list[Event] = [VentricularEvent(t, "conducted")]
        self.next_qrs_s = t + self._interval()
        if float(self.rng.random()) < self.config.pvc_rate:
            pvc = t + 0.55 * self.rr0
            events.append(VentricularEvent(pvc, "pvc"))
            self.next_qrs_s = max(self.next_qrs_s, pvc) + 0.5 * self.rr0
        return events


@RHYTHMS.register("aflutter")
class AtrialFlutter(RhythmModel):
    """Sawtooth F waves at 240-350/min, conducted 2:1, 3:1 or 4:1 (``flutter_conduction``, 0 = nearest 300/min).

    The atrial rate is ``hr_bpm`` × ratio where that lies in 240-350/min, so ``hr_bpm`` holds for 60-175 bpm.
    """

    statement = "atrial flutter"

    def __init__(self, config: SynthConfig, rng: np.random.Generator, respiration: Respiration) -> None:
        super().__init__(config, rng, respiration)
        if config.flutter_conduction:
            self.ratio = config.flutter_conduction
        else:
            self.ratio = min((2, 3, 4), key=lambda n: abs(config.hr_bpm * n - 300.0))
        low, high = FLUTTER_ATRIAL_RANGE
        self.atrial_bpm = min(max(config.hr_bpm * self.ratio, low), high)
        self.period_s = 60.0 / self.atrial_bpm
        self.phase_s = float(rng.uniform(0.0, self.period_s))
        self.next_wave = 0

    @property
    def atrial_rate_bpm(self) -> float | None:
        return self.atrial_bpm

    @property
    def ventricular_rr_s(self) -> float:
        return self.period_s * self.ratio

    def atrial_background(self, rng: np.random.Generator) -> AtrialBackground | None:
        if self.config.flutter_wave_mv <= 0:
            return None
        return FlutterWaves(self.config.flutter_wave_mv, self.period_s, self.phase_s)

    def next_events(self) -> list[Event]:
        t = self.phase_s + self.next_wave * self.period_s + FLUTTER_FR_S
        self.next_wave += self.ratio
        return [VentricularEvent(t, "conducted")]
