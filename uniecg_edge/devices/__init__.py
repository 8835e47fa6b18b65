"""Acquisition: devices opened from URLs (``openbci:///dev/ttyUSB0``), their drivers and simulators.

See ``base`` for the ``Device`` contract. Drivers register themselves by URL scheme when their module is imported;
``_load_drivers`` imports all of them (they need only numpy; pyserial loads when a port opens).
"""

from __future__ import annotations

import importlib

from .base import DEVICES, Chunk, Device, DeviceInfo, DeviceSpec, DeviceStats, device_from_url, open_device
from .url import DeviceUrl, ParamSpec, parse_device_url

_DRIVER_MODULES = ("openbci", "olimex", "ads1292r", "hackeeg", "ad8232", "playback", "synthetic")
_loaded = False


def _load_drivers() -> None:
    global _loaded
    if _loaded:
        return
    for name in _DRIVER_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    _loaded = True


def device_specs() -> list[DeviceSpec]:
    """The declarations of every registered device kind, sorted by name."""
    _load_drivers()
    return [cls.spec for _, cls in DEVICES.items()]


__all__ = [
    "DEVICES",
    "Chunk",
    "Device",
    "DeviceInfo",
    "DeviceSpec",
    "DeviceStats",
    "DeviceUrl",
    "ParamSpec",
    "device_from_url",
    "device_specs",
    "open_device",
    "parse_device_url",
]
