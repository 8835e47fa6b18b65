"""Electrode artefacts: baseline wander, mains interference, muscle (EMG) noise, electrode motion and limb tremor.

Noise is generated per electrode (RA, LA, LL, V1-V6), so leads inherit it through the same differences as the
cardiac signal and the limb-lead relations stay exact. Every source has its own random stream (seeded from the
record seed), so switching one on does not change the others, and every source is continuous across blocks:
sinusoids and motion events are functions of absolute time, the EMG filter carries its state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from .config import NoiseConfig
from .projection import ELECTRODES
from .waves import WaveBuffer

N_ELECTRODES = len(ELECTRODES)
_EMG_BAND_HZ = (20.0, 150.0)
_TREMOR_SPREAD = (-0.05, 0.0, 0.05)  # three close frequencies around tremor_hz: a tremor that waxes and wanes
_TREMOR_CHEST_WEIGHT = 0.15  # chest electrodes lie on the still torso; the limbs shake


def _rng(seed: int, source: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 1000 + source]))


@dataclass(frozen=True)
class MotionArtefact:
    """One electrode moving: a fast deflection that recovers exponentially (``vector`` is per electrode)."""

    onset_s: float
    rise_s: float
    decay_s: float
    vector: np.ndarray  # (9,) mV at the peak

    @property
    def start_s(self) -> float:
        return self.onset_s

    @property
    def end_s(self) -> float:
        return self.onset_s + 8.0 * self.decay_s

    def profile(self, t: np.ndarray) -> np.ndarray:
        x = t - self.onset_s
        peak_x = self.rise_s * math.log1p(self.decay_s / self.rise_s)
        peak = (1.0 - math.exp(-peak_x / self.rise_s)) * math.exp(-peak_x / self.decay_s)
        return (1.0 - np.exp(-x / self.rise_s)) * np.exp(-x / self.decay_s) / peak


class ElectrodeNoise:
    """Renders (9, n) electrode artefacts in mV, block after block."""

    def __init__(self, config: NoiseConfig, fs: float, seed: int, resp_hz: float, resp_phase: float) -> None:
        self.config = config
        self.fs = fs
        # Each electrode carries about half the lead amplitude: a lead is a difference of (at least) two.
        per_electrode = 1.0 / math.sqrt(2.0)
        rng = _rng(seed, 0)
        # Baseline wander: breathing (shared rhythm, per-electrode weight) and three slow drifts.
        freqs = np.concatenate([[resp_hz], rng.uniform(0.03, 0.5, 3)])
        amps = np.abs(rng.normal(0.0, 1.0, (N_ELECTRODES, 4))) + 0.2
        amps[:, 0] *= 2.0  # breathing dominates
        rms = np.sqrt(0.5 * np.sum(amps**2, axis=1, keepdims=True))
        self.bw_amps = amps / rms * (config.baseline_mv * per_electrode / math.sqrt(2.0))
        self.bw_freqs = freqs
        self.bw_phases = rng.uniform(0.0, 2.0 * math.pi, (N_ELECTRODES, 4))
        self.bw_phases[:, 0] = resp_phase + rng.normal(0.0, 0.3, N_ELECTRODES)
        self.bw_amps[:, 0] *= rng.choice([-1.0, 1.0], N_ELECTRODES)
        # Mains: fundamental and a weak third harmonic, one amplitude and phase per electrode.
        rng = _rng(seed, 1)
        self.mains_amps = config.mains_mv * per_electrode * rng.uniform(0.8, 1.2, N_ELECTRODES)
        self.mains_phases = rng.uniform(0.0, 2.0 * math.pi, (N_ELECTRODES, 2))
        # EMG: band-limited Gaussian noise with a slowly varying envelope.
        self.emg_rng = _rng(seed, 2)
        high = min(_EMG_BAND_HZ[1], 0.45 * fs)
        low = min(_EMG_BAND_HZ[0], 0.5 * high)
        self.emg_sos = signal.butter(2, [low, high], btype="bandpass", fs=fs, output="sos")
        impulse = signal.sosfilt(self.emg_sos, np.r_[1.0, np.zeros(8191)])
        self.emg_gain = config.emg_mv * per_electrode / math.sqrt(float(np.sum(impulse**2)))
        self.emg_state = np.zeros((self.emg_sos.shape[0], N_ELECTRODES, 2))
        rng = _rng(seed, 3)
        self.emg_env_freq = rng.uniform(0.05, 0.3, N_ELECTRODES)
        self.emg_env_phase = rng.uniform(0.0, 2.0 * math.pi, N_ELECTRODES)
        # Electrode motion: Poisson events, one electrode each.
        self.motion_rng = _rng(seed, 4)
        self.motion = WaveBuffer(fs)
        self.motion_rate_hz = config.motion_events_per_min / 60.0
        self.next_motion_s = self._motion_gap()
        # Limb tremor: a quasi-periodic oscillation near tremor_hz, strongest on one limb electrode.
        rng = _rng(seed, 5)
        self.tremor_freqs = config.tremor_hz * (1.0 + np.asarray(_TREMOR_SPREAD))
        weights = np.full(N_ELECTRODES, _TREMOR_CHEST_WEIGHT)
        weights[:3] = rng.uniform(0.2, 0.6, 3)
        weights[int(rng.integers(3))] = 1.0
        mix = rng.uniform(0.5, 1.0, (N_ELECTRODES, len(_TREMOR_SPREAD)))
        mix /= np.sqrt(np.sum(mix**2, axis=1, keepdims=True))
        self.tremor_amps = config.tremor_mv * per_electrode * weights[:, None] * mix
        self.tremor_phases = rng.uniform(0.0, 2.0 * math.pi, (N_ELECTRODES, len(_TREMOR_SPREAD)))

    def _motion_gap(self) -> float:
        if self.motion_rate_hz <= 0:
            return math.inf
        return float(self.motion_rng.exponential(1.0 / self.motion_rate_hz))

    def _add_motion_until(self, t_end: float) -> None:
        while self.next_motion_s < t_end:
            vector = np.zeros(N_ELECTRODES)
            electrode = int(self.motion_rng.integers(N_ELECTRODES))
            sign = 1.0 if self.motion_rng.random() < 0.5 else -1.0
            vector[electrode] = sign * self.config.motion_mv * float(self.motion_rng.uniform(0.5, 1.0))
            rise = float(self.motion_rng.uniform(0.02, 0.1))
            decay = float(self.motion_rng.uniform(0.2, 0.8))
            self.motion.add(MotionArtefact(self.next_motion_s, rise, decay, vector))
            self.next_motion_s += self._motion_gap()

    def render(self, first_sample: int, n: int) -> np.ndarray:
        t = np.arange(first_sample, first_sample + n, dtype=np.float64) / self.fs
        out = np.zeros((N_ELECTRODES, n))
        two_pi_t = 2.0 * math.pi * t
        if self.config.baseline_mv > 0:
            for k, freq in enumerate(self.bw_freqs):
                out += self.bw_amps[:, k : k + 1] * np.sin(freq * two_pi_t[None, :] + self.bw_phases[:, k : k + 1])
        if self.config.mains_mv > 0:
            hz = self.config.mains_hz
            out += self.mains_amps[:, None] * np.sin(hz * two_pi_t[None, :] + self.mains_phases[:, :1])
            out += 0.1 * self.mains_amps[:, None] * np.sin(3.0 * hz * two_pi_t[None, :] + self.mains_phases[:, 1:])
        if self.config.emg_mv > 0:
            white = self.emg_rng.standard_normal((n, N_ELECTRODES)).T  # drawn in time order: block-size free
            band, self.emg_state = signal.sosfilt(self.emg_sos, white, axis=1, zi=self.emg_state)
            envelope = 0.55 + 0.45 * np.sin(
                self.emg_env_freq[:, None] * two_pi_t[None, :] + self.emg_env_phase[:, None]
            )
            out += (self.emg_gain / math.sqrt(0.55**2 + 0.45**2 / 2.0)) * envelope * band
        if self.config.tremor_mv > 0:
            for k, freq in enumerate(self.tremor_freqs):
                out += self.tremor_amps[:, k : k + 1] * np.sin(
                    freq * two_pi_t[None, :] + self.tremor_phases[:, k : k + 1])
        if self.config.motion_mv > 0:
            self._add_motion_until((first_sample + n) / self.fs)
            self.motion.render(out, first_sample)
            self.motion.drop_before(first_sample + n)
        return out
