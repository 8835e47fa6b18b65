"""Beat shapes: P, QRS (per conduction or ectopic focus), ST and T waves as 3-D dipole waves.

A QRS template is a few Gaussian waves whose centres and widths are fractions of the QRS duration and whose
directions are heart-vector directions (x left, y inferior, z anterior). The whole template is rotated in the
frontal plane so that its net QRS area points at ``axis_deg`` exactly: the axis measured from the net QRS
areas of I and aVF (θ = atan2(2·aVF/√3, I)) equals the configured one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..registry import Registry
from .config import SynthConfig
from .projection import lead_vectors
from .waves import GaussianWave, PlateauWave, Wave, rotate_frontal, unit

P_DURATION_S = 0.10
T_SIGMA_FRACTION = 0.085  # right-hand T sigma as a fraction of QT; the T wave ends 2.5 sigmas after its peak
T_LEFT_RIGHT_RATIO = 1.5  # slow rise, faster fall
WAVE_EDGE_SIGMAS = 2.5  # a Gaussian wave "starts" and "ends" this many sigmas from its peak (4 % of the peak)
NORMAL_QRS_S = 0.10
MIN_JT_S = 0.16  # shortest J point to T end


@dataclass(frozen=True)
class WaveSpec:
    """One Gaussian wave of a complex: centre and sigma as fractions of the complex duration."""

    center: float
    sigma: float
    amplitude_mv: float
    direction: tuple[float, float, float]


@dataclass(frozen=True)
class QrsTemplate:
    """A ventricular activation pattern and its repolarisation.

    ``t_direction`` None means a normal, concordant T wave whose frontal angle follows the QRS axis.
    ``wide_qrs_ms``: the QRS duration used when the configured one is under 120 ms (bundle branch blocks).
    """

    label: str
    waves: tuple[WaveSpec, ...]
    t_amplitude_mv: float
    t_direction: tuple[float, float, float] | None = None
    discordant_st_mv: float = 0.0
    wide_qrs_ms: float | None = None
    statement: str | None = None

    def net_frontal_angle_rad(self) -> float:
        net = np.zeros(2)
        for w in self.waves:
            net += w.amplitude_mv * w.sigma * unit(w.direction)[:2]
        return math.atan2(net[1], net[0])


CONDUCTIONS: Registry[QrsTemplate] = Registry("conduction")
PVC_FOCI: Registry[QrsTemplate] = Registry("PVC focus")
ST_TERRITORIES: Registry[tuple[float, float, float]] = Registry("ST territory")
ECTOPIC_P_FOCI: Registry[tuple[float, float, float]] = Registry("ectopic atrial focus")

CONDUCTIONS.add(
    "normal",
    QrsTemplate(
        label="N",
        waves=(
            WaveSpec(0.20, 0.08, 0.20, (-0.45, 0.00, 0.80)),  # septal q (left → right, anterior)
            WaveSpec(0.46, 0.10, 1.45, (0.50, 0.866, -0.20)),  # left-ventricular free wall R
            WaveSpec(0.78, 0.088, 0.50, (-0.35, -0.50, -0.80)),  # basal S
        ),
        t_amplitude_mv=0.35,
    ),
)
CONDUCTIONS.add(
    "rbbb",
    QrsTemplate(
        label="R",
        waves=(
            WaveSpec(0.12, 0.05, 0.25, (-0.30, -0.30, 0.85)),  # septal r in V1
            WaveSpec(0.32, 0.08, 1.25, (0.55, 0.75, -0.45)),  # left ventricle on time
            WaveSpec(0.72, 0.12, 0.70, (-0.33, -0.45, 0.80)),  # late, slow right ventricle: R' in V1, wide S in I, V6
        ),
        t_amplitude_mv=0.25,
        t_direction=(0.50, 0.60, -0.60),
        discordant_st_mv=0.05,
        wide_qrs_ms=140.0,
        statement="right bundle branch block",
    ),
)
CONDUCTIONS.add(
    "lbbb",
    QrsTemplate(
        label="L",
        waves=(
            WaveSpec(0.12, 0.05, 0.30, (0.75, 0.30, -0.90)),  # septum right → left: no septal q, QS in V1
            WaveSpec(0.37, 0.13, 1.45, (0.75, 0.30, -0.60)),  # broad notched R in I, aVL, V5, V6
            WaveSpec(0.67, 0.13, 1.45, (0.75, 0.30, -0.45)),
        ),
        t_amplitude_mv=0.40,
        t_direction=(-0.60, 0.0, 0.70),
        discordant_st_mv=0.15,
        wide_qrs_ms=150.0,
        statement="left bundle branch block",
    ),
)

PVC_FOCI.add(  # right-ventricular outflow tract: LBBB-like, inferior axis
    "rvot",
    QrsTemplate("V", (WaveSpec(0.25, 0.12, 0.35, (0.3, 0.9, -0.5)), WaveSpec(0.55, 0.16, 1.6, (0.3, 0.9, -0.5))), 0.5),
)
PVC_FOCI.add(  # left-ventricular free wall: RBBB-like, right axis
    "lv",
    QrsTemplate("V", (WaveSpec(0.25, 0.12, 0.35, (-0.6, 0.3, 0.8)), WaveSpec(0.55, 0.16, 1.5, (-0.6, 0.2, 0.8))), 0.5),
)
PVC_FOCI.add(  # right-ventricular apex: LBBB-like, superior axis
    "rv_apex",
    QrsTemplate(
        "V", (WaveSpec(0.25, 0.12, 0.35, (0.6, -0.7, -0.4)), WaveSpec(0.55, 0.16, 1.5, (0.6, -0.7, -0.4))), 0.5
    ),
)

# Injury-current directions; st_shift_mv is what the most aligned lead shows.
ST_TERRITORIES.add("anterior", (0.25, 0.0, 1.0))  # V1-V4
ST_TERRITORIES.add("inferior", (-0.2, 1.0, 0.0))  # II, III, aVF (III > II), reciprocal in aVL
ST_TERRITORIES.add("lateral", (1.0, -0.4, -0.1))  # I, aVL, V5, V6
ST_TERRITORIES.add("diffuse", (0.5, 0.7, 0.5))  # most leads, reciprocal in aVR (pericarditis pattern)

ECTOPIC_P_FOCI.add("low_atrial", (0.3, -0.9, 0.2))  # inverted P in II, III, aVF
ECTOPIC_P_FOCI.add("left_atrial", (-0.7, 0.5, -0.3))  # negative P in I
ECTOPIC_P_FOCI.add("high_right_atrial", (0.1, 0.9, 0.5))

_SINUS_P = (  # right then left atrium: biphasic in V1
    WaveSpec(0.38, 0.15, 0.12, (0.25, 0.85, 0.45)),
    WaveSpec(0.62, 0.15, 0.11, (0.75, 0.45, -0.45)),
)


@dataclass(frozen=True)
class Complex:
    """A ready-to-place ventricular complex: waves as (centre s, sigma s, vector) from QRS onset."""

    label: str
    qrs_s: float
    qt_s: float
    r_offset_s: float
    gaussians: tuple[tuple[float, float, float, np.ndarray], ...]  # (centre, sigma_left, sigma_right, vector)
    st_vector: np.ndarray


class BeatMorphology:
    """Turns atrial and ventricular events into dipole waves for one record (fixed per config and seed)."""

    def __init__(self, config: SynthConfig, ventricular_rr_s: float, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.scale = config.amplitude_scale()
        template = CONDUCTIONS.get(config.conduction)
        qrs_ms = config.qrs_ms
        if template.wide_qrs_ms is not None and qrs_ms < 120.0:
            qrs_ms = template.wide_qrs_ms
        self.qrs_s = qrs_ms / 1000.0
        if config.qt_ms is not None:
            qt_s = config.qt_ms / 1000.0
        else:  # Bazett QTc; a wide QRS lengthens QT by its extra width (the JT interval stays)
            qt_s = config.default_qtc_s() * math.sqrt(ventricular_rr_s) + max(0.0, self.qrs_s - NORMAL_QRS_S)
        self.qt_s = max(qt_s, self.qrs_s + MIN_JT_S)
        self.st_vector = self._injury_vector()
        self.dominant = self._build(template, self.qrs_s, self.qt_s, config.axis_deg, self.st_vector)
        self.pvc_focus = list(PVC_FOCI)[int(rng.integers(len(list(PVC_FOCI))))]
        pvc_qrs_s = max(1.6 * self.qrs_s, 0.14)
        pvc_qt_s = self.qt_s + 0.5 * (pvc_qrs_s - self.qrs_s)
        self.ectopic_ventricular = self._build(PVC_FOCI.get(self.pvc_focus), pvc_qrs_s, pvc_qt_s, None, np.zeros(3))
        self.ectopic_p_focus = list(ECTOPIC_P_FOCI)[int(rng.integers(len(list(ECTOPIC_P_FOCI))))]
        self.total_st_vector = self.dominant.st_vector

    # -- construction ----------------------------------------------------------------------------
    def _injury_vector(self) -> np.ndarray:
        if self.config.st_shift_mv == 0.0:
            return np.zeros(3)
        direction = unit(ST_TERRITORIES.get(self.config.st_territory))
        largest = max(float(v @ direction) for v in lead_vectors().values())
        return direction * (self.config.st_shift_mv / largest)

    def _build(
        self, template: QrsTemplate, qrs_s: float, qt_s: float, axis_deg: float | None, st_vector: np.ndarray
    ) -> Complex:
        rotation = 0.0 if axis_deg is None else math.radians(axis_deg) - template.net_frontal_angle_rad()
        gaussians = []
        for w in template.waves:
            vector = rotate_frontal(unit(w.direction), rotation) * w.amplitude_mv * self.scale
            gaussians.append((w.center * qrs_s, w.sigma * qrs_s, w.sigma * qrs_s, vector))
        main = max(range(len(template.waves)), key=lambda i: template.waves[i].amplitude_mv)
        r_offset_s = template.waves[main].center * qrs_s
        if template.t_direction is not None:
            t_dir = rotate_frontal(unit(template.t_direction), rotation)
        elif axis_deg is not None:
            frontal = math.radians(0.5 * axis_deg + 20.0)  # normal QRS-T angle: T between the QRS axis and +45°
            t_dir = unit((math.cos(frontal), math.sin(frontal), 0.30))
        else:  # ectopic: T opposite the main QRS force
            t_dir = -unit(gaussians[main][3])
        sigma_r = T_SIGMA_FRACTION * qt_s
        t_peak = qt_s - WAVE_EDGE_SIGMAS * sigma_r
        # The T wave starts no earlier than 20 ms after the J point, however short the QT.
        sigma_l = min(T_LEFT_RIGHT_RATIO * sigma_r, (t_peak - qrs_s - 0.02) / WAVE_EDGE_SIGMAS)
        t_vector = t_dir * template.t_amplitude_mv * self.scale * self.config.t_scale
        gaussians.append((t_peak, sigma_l, sigma_r, t_vector))
        st = st_vector + t_dir * template.discordant_st_mv * self.scale
        return Complex(template.label, qrs_s, qt_s, r_offset_s, tuple(gaussians), st)

    # -- per event -----------------------------------------------------------------------------------
    def beat_gain(self, time_s: float, respiration: float) -> float:
        """Beat-to-beat amplitude: ±4 % with breathing (``respiration`` in −1..1) and 1 % jitter."""
        return 1.0 + 0.04 * respiration + 0.01 * float(self.rng.standard_normal())

    def p_waves(self, onset_s: float, ectopic: bool, gain: float) -> list[Wave]:
        config = self.config
        if ectopic:
            specs: tuple[WaveSpec, ...] = (WaveSpec(0.5, 0.18, 0.15, ECTOPIC_P_FOCI.get(self.ectopic_p_focus)),)
            duration_s, factor, rotation = P_DURATION_S, 1.0, 0.0
        else:
            specs = _SINUS_P
            duration_s, factor = config.p_duration_ms / 1000.0, config.p_scale
            rotation = math.radians(config.p_axis_shift_deg)
        waves: list[Wave] = []
        for w in specs:
            sigma = w.sigma * duration_s
            vector = rotate_frontal(unit(w.direction), rotation) * w.amplitude_mv * self.scale * factor * gain
            waves.append(GaussianWave(onset_s + w.center * duration_s, sigma, sigma, vector))
        return waves

    def ventricular_waves(self, onset_s: float, ectopic: bool, gain: float) -> tuple[list[Wave], float]:
        """Waves of one ventricular complex starting at ``onset_s`` and the time of its R peak."""
        complex_ = self.ectopic_ventricular if ectopic else self.dominant
        waves: list[Wave] = [
            GaussianWave(onset_s + c, sl, sr, vector * gain) for c, sl, sr, vector in complex_.gaussians
        ]
        if np.any(complex_.st_vector != 0.0):
            t_peak = complex_.gaussians[-1][0]
            j = complex_.qrs_s
            waves.append(
                PlateauWave(
                    onset_s + j - 0.02,
                    onset_s + j + 0.02,
                    onset_s + t_peak,
                    onset_s + complex_.qt_s,
                    complex_.st_vector.copy(),
                )
            )
        return waves, onset_s + complex_.r_offset_s
