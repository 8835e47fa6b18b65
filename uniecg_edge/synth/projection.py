"""Heart vector (+ electrode potentials) → the 12 standard leads, with the limb-lead relations exact.

Leads I and II are projections of the frontal heart vector on the Einthoven directions (0° and 60°) plus the
differences of the limb-electrode artefacts (I = LA − RA, II = LL − RA); III, aVR, aVL and aVF are then
*derived* from I and II (``uniecg_edge.leads.derive_limb_leads``), so Einthoven's and Goldberger's relations
hold to float precision whatever the rhythm or noise. V1–V6 project the 3-D heart vector on precordial lead
vectors (approximately Dower's, scaled to these limb leads) plus their electrode artefact minus Wilson's
central terminal (RA + LA + LL)/3.
"""

from __future__ import annotations

import math

import numpy as np

from ..leads import STANDARD_LEADS, derive_limb_leads

ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")

_LEAD_I = np.array([1.0, 0.0, 0.0])
_LEAD_II = np.array([math.cos(math.radians(60.0)), math.sin(math.radians(60.0)), 0.0])
# x left, y inferior, z anterior; magnitudes reflect the chest leads' larger voltages.
_PRECORDIAL = 1.1 * np.array(
    [
        [-0.52, 0.16, 0.92],  # V1
        [0.04, 0.16, 1.39],  # V2
        [0.88, 0.10, 1.28],  # V3
        [1.21, 0.13, 0.60],  # V4
        [1.13, 0.13, 0.09],  # V5
        [0.83, 0.08, -0.23],  # V6
    ]
)
# Rows: I, II, V1..V6 — the eight independent leads.
_INDEPENDENT = np.vstack([_LEAD_I, _LEAD_II, _PRECORDIAL])


def lead_vectors() -> dict[str, np.ndarray]:
    """The 3-D lead vector of each of the 12 standard leads (derived ones from I and II)."""
    derived = derive_limb_leads(_LEAD_I, _LEAD_II)
    vectors = {"I": _LEAD_I, "II": _LEAD_II, **derived}
    for i, name in enumerate(("V1", "V2", "V3", "V4", "V5", "V6")):
        vectors[name] = _PRECORDIAL[i]
    return {name: np.asarray(vectors[name], dtype=np.float64) for name in STANDARD_LEADS}


def project(heart: np.ndarray, electrodes: np.ndarray | None = None) -> np.ndarray:
    """(12, n) float32 mV in ``STANDARD_LEADS`` order from the heart vector (3, n) and electrode artefacts (9, n)."""
    independent = _INDEPENDENT @ heart  # (8, n): I, II, V1..V6
    if electrodes is not None:
        ra, la, ll = electrodes[0], electrodes[1], electrodes[2]
        independent[0] += la - ra
        independent[1] += ll - ra
        independent[2:] += electrodes[3:] - (ra + la + ll) / 3.0
    lead_i, lead_ii = independent[0], independent[1]
    derived = derive_limb_leads(lead_i, lead_ii)
    out = np.empty((12, heart.shape[1]), dtype=np.float32)
    out[0] = lead_i
    out[1] = lead_ii
    out[2] = derived["III"]
    out[3] = derived["aVR"]
    out[4] = derived["aVL"]
    out[5] = derived["aVF"]
    out[6:] = independent[2:]
    return out
