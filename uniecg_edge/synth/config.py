"""Configuration of the synthetic ECG generator: frozen, validated, JSON-friendly dataclasses."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

# Beat-to-beat variability at hrv_scale = 1: respiratory sinus arrhythmia and random jitter, fractions of RR.
RSA_FRACTION = 0.03
RR_JITTER_FRACTION = 0.015


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if not _finite(value) or not low <= float(value) <= high:  # type: ignore[arg-type]
        raise ConfigError(f"synth {name} must be a number from {low:g} to {high:g}, got {value!r}")


@dataclass(frozen=True)
class NoiseConfig:
    """Artefacts added at the electrodes, so that the limb-lead relations still hold exactly.

    Amplitudes are what one lead shows, roughly: ``baseline_mv`` and ``motion_mv`` peak deviations,
    ``mains_mv`` the amplitude of the ``mains_hz`` sinusoid, ``emg_mv`` the RMS of the muscle noise,
    ``tremor_mv`` the amplitude of a limb tremor near ``tremor_hz`` (3-12 Hz, the band of atrial fibrillatory
    waves, which a tremor artefact can mimic). All are 0 by default (a clean record).
    """

    baseline_mv: float = 0.0
    mains_mv: float = 0.0
    mains_hz: float = 50.0
    emg_mv: float = 0.0
    motion_mv: float = 0.0
    motion_events_per_min: float = 4.0
    tremor_mv: float = 0.0
    tremor_hz: float = 6.0

    def __post_init__(self) -> None:
        for name in ("baseline_mv", "mains_mv", "emg_mv", "motion_mv", "motion_events_per_min", "tremor_mv"):
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise ConfigError(f"noise {name} must be a finite number >= 0, got {value!r}")
        if not _finite(self.mains_hz) or self.mains_hz <= 0:
            raise ConfigError(f"noise mains_hz must be > 0, got {self.mains_hz!r}")
        _check_range("noise tremor_hz", self.tremor_hz, 3.0, 12.0)

    @property
    def is_clean(self) -> bool:
        return (self.baseline_mv == 0 and self.mains_mv == 0 and self.emg_mv == 0 and self.motion_mv == 0
                and self.tremor_mv == 0)


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise. Names of rhythms, conductions and ST territories come from registries.

    Rates: for ``sinus``, ``afib``, ``aflutter`` and ``av_block_1`` ``hr_bpm`` is the ventricular rate;
    for second- and third-degree AV block it is the atrial (sinus) rate and the ventricles follow the block.
    """

    hr_bpm: float = 72.0
    rhythm: str = "sinus"
    axis_deg: float = 60.0
    pr_ms: float = 160.0
    qrs_ms: float = 90.0
    qt_ms: float | None = None
    st_shift_mv: float = 0.0
    conduction: str = "normal"
    noise: NoiseConfig = NoiseConfig()
    fs: float = 500.0
    seed: int = 0
    age: float | None = None
    sex: str | None = None
    # Further physiology, all with defaults.
    qtc_ms: float | None = None  # used when qt_ms is None; None: 400 ms (male or unknown), 415 ms (female)
    st_territory: str = "anterior"  # where st_shift_mv shows most (registry)
    pvc_rate: float = 0.0  # fraction of sinus/AF beats replaced by a premature ventricular complex
    pac_rate: float = 0.0  # fraction of sinus cycles followed by a premature atrial complex
    hrv_scale: float = 1.0  # 0: metronomic; 1: ~3 % respiratory sinus arrhythmia + 1.5 % beat jitter
    resp_rate_bpm: float = 15.0  # breathing: drives sinus arrhythmia, QRS amplitude and baseline wander
    av_block_ratio: int = 4  # second-degree AV block: P waves per group (the last one is blocked)
    escape_rate_bpm: float = 40.0  # third-degree AV block: escape rate (< 40: ventricular, wide)
    flutter_conduction: int = 0  # atrial flutter F:QRS ratio (2..4); 0 picks the one nearest 300/min atria
    af_irregularity: float = 0.25  # coefficient of variation of the AF RR intervals
    fwave_mv: float = 0.1  # AF fibrillatory waves, peak-to-peak in V1 (about)
    flutter_wave_mv: float = 0.25  # flutter F waves, peak-to-peak in lead II
    # Per-record beat shape, all 1 / default for the reference morphology.
    p_scale: float = 1.0  # sinus P wave amplitude factor
    p_duration_ms: float = 100.0  # sinus P wave duration
    p_axis_shift_deg: float = 0.0  # sinus P vector rotated in the frontal plane
    t_scale: float = 1.0  # T wave amplitude factor

    def __post_init__(self) -> None:
        from .morphology import CONDUCTIONS, ST_TERRITORIES
        from .rhythm import RHYTHMS

        RHYTHMS.get(self.rhythm)
        CONDUCTIONS.get(self.conduction)
        ST_TERRITORIES.get(self.st_territory)
        if not isinstance(self.noise, NoiseConfig):
            raise ConfigError(f"noise must be a NoiseConfig, got {type(self.noise).__name__}")
        _check_range("hr_bpm", self.hr_bpm, 20.0, 300.0)
        _check_range("axis_deg", self.axis_deg, -180.0, 180.0)
        _check_range("pr_ms", self.pr_ms, 80.0, 600.0)
        _check_range("qrs_ms", self.qrs_ms, 50.0, 250.0)
        if self.qt_ms is not None:
            _check_range("qt_ms", self.qt_ms, 150.0, 800.0)
        if self.qtc_ms is not None:
            _check_range("qtc_ms", self.qtc_ms, 250.0, 700.0)
        _check_range("st_shift_mv", self.st_shift_mv, -1.5, 1.5)
        _check_range("fs", self.fs, 50.0, 20_000.0)
        _check_range("pvc_rate", self.pvc_rate, 0.0, 0.5)
        _check_range("pac_rate", self.pac_rate, 0.0, 0.5)
        _check_range("hrv_scale", self.hrv_scale, 0.0, 5.0)
        _check_range("resp_rate_bpm", self.resp_rate_bpm, 4.0, 40.0)
        _check_range("escape_rate_bpm", self.escape_rate_bpm, 15.0, 70.0)
        _check_range("af_irregularity", self.af_irregularity, 0.0, 0.4)
        _check_range("fwave_mv", self.fwave_mv, 0.0, 1.0)
        _check_range("flutter_wave_mv", self.flutter_wave_mv, 0.0, 1.0)
        _check_range("p_scale", self.p_scale, 0.0, 3.0)
        _check_range("p_duration_ms", self.p_duration_ms, 60.0, 160.0)
        _check_range("p_axis_shift_deg", self.p_axis_shift_deg, -60.0, 60.0)
        _check_range("t_scale", self.t_scale, 0.0, 3.0)
        for name in ("seed", "av_block_ratio", "flutter_conduction"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ConfigError(f"synth {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not 2 <= self.av_block_ratio <= 8:
            raise ConfigError(f"av_block_ratio must be an integer from 2 to 8, got {self.av_block_ratio!r}")
        if self.flutter_conduction not in (0, 2, 3, 4):
            raise ConfigError(f"flutter_conduction must be 0 (auto), 2, 3 or 4, got {self.flutter_conduction!r}")
        if self.age is not None:
            _check_range("age", self.age, 0.0, 130.0)
        if self.sex is not None:
            object.__setattr__(self, "sex", normalise_sex(self.sex))

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (``noise`` nested)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SynthConfig:
        """Inverse of ``to_dict``; unknown keys raise ``ConfigError`` listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown synth config key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        kwargs = dict(values)
        if isinstance(kwargs.get("noise"), dict):
            noise_known = {f.name for f in dataclasses.fields(NoiseConfig)}
            bad = sorted(set(kwargs["noise"]) - noise_known)
            if bad:
                raise ConfigError(f"unknown noise key(s) {', '.join(bad)} (known: {', '.join(sorted(noise_known))})")
            kwargs["noise"] = NoiseConfig(**kwargs["noise"])
        return cls(**kwargs)

    # -- derived values ------------------------------------------------------------------------
    def default_qtc_s(self) -> float:
        if self.qtc_ms is not None:
            return self.qtc_ms / 1000.0
        return 0.415 if self.sex == "F" else 0.400

    def amplitude_scale(self) -> float:
        """Voltage scale from age and sex: young adults higher, women and the elderly lower."""
        scale = 1.0
        if self.age is not None:
            scale *= min(1.15, max(0.85, 1.15 - 0.005 * (self.age - 20.0)))
        if self.sex == "F":
            scale *= 0.88
        return scale


def normalise_sex(value: str) -> str:
    """``"M"`` or ``"F"`` from common spellings; anything else is a ``ConfigError``."""
    key = str(value).strip().lower()
    if key in ("m", "male", "man"):
        return "M"
    if key in ("f", "female", "woman"):
        return "F"
    raise ConfigError(f"sex must be M or F (or male/female), got {value!r}")


__all__ = ["NoiseConfig", "SynthConfig", "normalise_sex"]
