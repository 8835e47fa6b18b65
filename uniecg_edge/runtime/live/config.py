"""``LiveConfig``: every setting of the live pipeline, validated, saved as JSON beside the recording it produced."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ...errors import ConfigError

SEXES = ("M", "F")


@dataclass(frozen=True)
class ReferenceSettings:
    """How a reference ECG is generated for a report (``--reference``).

    ``age`` and ``sex`` are the patient's when known; when not, the generator is conditioned on
    ``DEFAULT_AGE`` / ``DEFAULT_SEX`` and the comparison lists them under ``assumed``.
    """

    steps: int = 8
    scheduler: str = "ddim"
    age: float | None = None
    sex: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 1000:
            raise ConfigError(f"reference steps must be 1 to 1000, got {self.steps}")
        if self.age is not None and not (math.isfinite(self.age) and 0 <= self.age < 130):
            raise ConfigError(f"age must be 0 to 130 years, got {self.age}")
        if self.sex is not None and self.sex not in SEXES:
            raise ConfigError(f"sex must be M or F, got {self.sex!r}")


@dataclass(frozen=True)
class LiveConfig:
    """Settings of ``uniecg-edge run`` (times in seconds).

    ``duration_s`` is signal time (samples / rate, gaps included), like ``record --seconds``; ``None`` runs
    until stopped. ``queue_s`` bounds the hand-off from the acquisition thread (signal time held while the
    consumer is busy); ``flush_s`` is how often the recording is fsynced and its header rewritten.
    """

    window_s: float = 10.0
    hop_s: float = 2.0
    duration_s: float | None = None
    read_timeout_s: float = 0.2
    queue_s: float = 120.0
    flush_s: float = 1.0
    startup_timeout_s: float = 10.0
    reopen_first_s: float = 0.2  # back-off of the pipeline's own reopen after a device gave up
    reopen_cap_s: float = 5.0
    drain_timeout_s: float = 120.0  # end of --duration: wait this long for the model's last window
    stop_grace_s: float = 5.0  # SIGINT / SIGTERM: wait this long for the window being interpreted
    model_stall_s: float = 60.0  # a window interpreted longer than this is reported as a stall (once)
    max_new_tokens: int | None = None
    device_lead_off_fraction: float = 0.5  # a lead the device flags off this long in a window fails the gate
    reference: ReferenceSettings | None = None

    def __post_init__(self) -> None:
        positive = {"window_s": self.window_s, "hop_s": self.hop_s, "read_timeout_s": self.read_timeout_s,
                    "queue_s": self.queue_s, "flush_s": self.flush_s, "startup_timeout_s": self.startup_timeout_s,
                    "reopen_first_s": self.reopen_first_s, "reopen_cap_s": self.reopen_cap_s}
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
        if self.hop_s > self.window_s:
            raise ConfigError(f"hop ({self.hop_s:g} s) must not exceed the window ({self.window_s:g} s)")
        if self.queue_s < self.window_s:
            raise ConfigError(f"queue_s ({self.queue_s:g}) must hold at least one window ({self.window_s:g} s)")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ConfigError(f"duration must be a positive number of seconds, got {self.duration_s}")
        if not 0 < self.device_lead_off_fraction <= 1:
            raise ConfigError(f"device_lead_off_fraction must be in (0, 1], got {self.device_lead_off_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
