"""What the runtime's ``generate`` returns (the fields of the torch pipeline's ``GeneratedEcg``, without torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..record import EcgRecord


@dataclass
class GeneratedEcg:
    record: EcgRecord  # 12 standard leads, 500 Hz, 10 s, mV
    text: str  # what the model said before the [ECG] tokens
    ecg_tokens: str  # "emitted" (the model chose to generate) or "forced" (appended after the model's text)
    steps: int
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
