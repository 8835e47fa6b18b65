"""Device URLs (``scheme://target?key=value&...``) and their typed, validated parameters.

``openbci:///dev/ttyUSB0?gain=24`` → scheme ``openbci``, target ``/dev/ttyUSB0``;
``playback://data/100.hea?speed=4`` → target ``data/100.hea`` (relative); ``synthetic://?hr=72`` → no target.
Unknown or malformed parameters raise a ``ConfigError`` (exit status 2) that lists the valid ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ..errors import ConfigError
from ..leads import canonical_name

UNUSED_CHANNEL = "-"  # in ?leads=: a channel that is not delivered


@dataclass(frozen=True)
class ParamSpec:
    """One URL parameter: its name, type (``int``, ``float``, ``str``, ``bool`` or ``leads``) and default."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": default, "help": self.help}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        return out

    def parse(self, text: str, url: str) -> Any:
        converter = _CONVERTERS[self.type]
        try:
            value = converter(text)
        except ValueError as exc:
            raise ConfigError(f"{url}: bad value {self.name}={text!r} ({exc})") from None
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ConfigError(f"{url}: bad value {self.name}={text!r} (allowed: {allowed})")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            lo = "-inf" if self.minimum is None else f"{self.minimum:g}"
            hi = "inf" if self.maximum is None else f"{self.maximum:g}"
            raise ConfigError(f"{url}: bad value {self.name}={text!r} (allowed range {lo} to {hi})")
        return value


@dataclass(frozen=True)
class DeviceUrl:
    """A parsed device URL: ``params`` holds every declared parameter (given or default)."""

    text: str
    scheme: str
    target: str
    params: dict[str, Any]


def _to_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def parse_leads(text: str) -> tuple[str, ...]:
    """Lead names from "I,II,-,V1" (canonical spelling; "-" marks an unused channel)."""
    names = tuple(canonical_name(part) for part in text.split(","))
    if not names or any(not name for name in names):
        raise ValueError("expected comma-separated lead names, '-' for an unused channel")
    used = [n for n in names if n != UNUSED_CHANNEL]
    duplicates = sorted({n for n in used if used.count(n) > 1})
    if duplicates:
        raise ValueError(f"lead {', '.join(duplicates)} named twice")
    if not used:
        raise ValueError("every channel is unused")
    return names


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int": lambda text: int(text, 10),
    "float": _to_float,
    "str": str,
    "bool": _to_bool,
    "leads": parse_leads,
}


def parse_device_url(url: str, specs: Sequence[ParamSpec]) -> DeviceUrl:
    """Split ``url`` and convert its query with ``specs``.

    Unknown keys raise ``ConfigError`` listing the valid ones.
    """
    if "://" not in url:
        raise ConfigError(f"device URL {url!r} must look like kind://target?key=value")
    scheme, rest = url.split("://", 1)
    scheme = scheme.strip().lower()
    target, _, query = rest.partition("?")
    target = unquote(target)
    known = {spec.name: spec for spec in specs}
    params: dict[str, Any] = {spec.name: spec.default for spec in specs}
    seen: set[str] = set()
    for item in (part for part in query.split("&") if part):
        key, eq, value = item.partition("=")
        key = unquote(key).strip().lower()
        if not eq or not key:
            valid = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{url}: malformed parameter {item!r} (expected key=value; valid keys: {valid})")
        if key not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{url}: unknown parameter {key!r} for {scheme}:// (valid: {valid})")
        if key in seen:
            raise ConfigError(f"{url}: parameter {key!r} given twice")
        seen.add(key)
        params[key] = known[key].parse(unquote(value.replace("+", " ")), url)
    return DeviceUrl(text=url, scheme=scheme, target=target, params=params)


def lead_map(names: Sequence[str], channels: int, url: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Indices of the delivered channels and their lead names, from a ``?leads=`` list for ``channels`` wires.

    A list shorter than the channel count leaves the remaining channels unused; a longer one is an error.
    """
    if len(names) > channels:
        raise ConfigError(f"{url}: leads= names {len(names)} channels but the device has {channels}")
    indices = tuple(i for i, name in enumerate(names) if name != UNUSED_CHANNEL)
    return indices, tuple(names[i] for i in indices)
