"""The report every command emits (DESIGN.md §8). Unknown values are ``None`` (JSON ``null``), never invented."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MEASUREMENT_KEYS: tuple[str, ...] = (
    "heart_rate_bpm", "rr_ms", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg",
)


@dataclass
class Measurements:
    """Global measurements; intervals in ms, axis in degrees, ``r_peaks`` as sample indices at the record's fs."""

    heart_rate_bpm: float | None = None
    rr_ms: float | None = None
    pr_ms: float | None = None
    qrs_ms: float | None = None
    qt_ms: float | None = None
    qtc_ms: float | None = None
    axis_deg: float | None = None
    r_peaks: list[int] | None = None


@dataclass
class Report:
    record: str
    fs: float
    leads: list[str]
    duration_s: float
    quality: dict[str, Any] | None = None
    measurements: Measurements = field(default_factory=Measurements)
    rhythm: str | None = None
    critical: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None
    claims: dict[str, float | None] | None = None
    discrepancies: list[dict[str, Any]] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        clash = sorted(set(extra) & set(data))
        if clash:
            raise ValueError(f"Report.extra may not replace the report's own keys: {', '.join(clash)}")
        data.update(extra)
        return _jsonable(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN and inf become null so the output is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value
