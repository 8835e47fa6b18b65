"""Simulators: every serial device kind played byte for byte on a pseudo-terminal (see ``base``)."""

from __future__ import annotations

from ...registry import Registry
from .ad8232 import Ad8232Simulator
from .ads1292r import Ads1292rSimulator
from .base import Simulator, SimulatorConfig
from .hackeeg import HackEegSimulator
from .olimex import OlimexSimulator
from .openbci import CytonDaisySimulator, CytonSimulator

SIMULATORS: Registry[type[Simulator]] = Registry("simulator kind")
for _cls in (CytonSimulator, CytonDaisySimulator, OlimexSimulator, Ads1292rSimulator, HackEegSimulator,
             Ad8232Simulator):
    SIMULATORS.add(_cls.kind, _cls)


def create_simulator(kind: str, config: SimulatorConfig | None = None) -> Simulator:
    """An unstarted simulator of ``kind`` (unknown kinds raise ``ConfigError`` listing the known ones)."""
    return SIMULATORS.get(kind)(config)


__all__ = ["SIMULATORS", "Simulator", "SimulatorConfig", "create_simulator"]
