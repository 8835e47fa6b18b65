"""Physiologically consistent synthetic 12-lead ECG: a cardiac-dipole model projected on the lead vectors.

``synthesize(config, duration_s)`` returns a record with its ground truth; ``SynthStream(config).read(n)``
streams the same samples endlessly. The limb-lead relations (Einthoven, Goldberger) hold exactly.
"""

from __future__ import annotations

from .config import NoiseConfig, SynthConfig
from .morphology import CONDUCTIONS, ST_TERRITORIES
from .rhythm import RHYTHMS
from .stream import SynthStream
from .synthesize import SynthResult, synthesize

__all__ = [
    "CONDUCTIONS",
    "NoiseConfig",
    "RHYTHMS",
    "ST_TERRITORIES",
    "SynthConfig",
    "SynthResult",
    "SynthStream",
    "synthesize",
]
