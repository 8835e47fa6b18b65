"""The demo's console sink: one short human line per live event, and the events kept for the summary.

A line per report (``report``, ``rejected``, ``model_error``), per critical alert and per device event::

    t=  12.0 s  report    HR  61 bpm  sinus rhythm  "Sinus rhythm with normal axis."  quality ok  latency 1.21 s

(time = end of the window in signal seconds; latency = window complete → report out). The sink keeps only the
figures the summary needs, so its memory is small however long the demo runs.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..record import EcgRecord
    from ..runtime.live.windows import LiveWindow

TEXT_CHARS = 72
LINE_EVENTS = ("report", "rejected", "model_error", "critical", "dsp_error", "device")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str | None, limit: int = TEXT_CHARS) -> str | None:
    """The first sentence of ``text`` on one line, cut to ``limit`` characters (``None`` when there is none)."""
    if not text or not text.strip():
        return None
    flat = " ".join(text.split())
    sentence = _SENTENCE_END.split(flat, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def quality_flags(event: dict[str, Any]) -> str:
    """``ok`` or the flagged leads, e.g. ``V1 noisy, V3 flat``."""
    leads = (event.get("quality") or {}).get("leads") or {}
    flagged = [f"{lead} {'/'.join(entry['flags'])}" for lead, entry in leads.items()
               if isinstance(entry, dict) and entry.get("flags")]
    if not flagged:
        return "ok"
    return ", ".join(flagged[:4]) + (f" (+{len(flagged) - 4} leads)" if len(flagged) > 4 else "")


def window_to_report_s(event: dict[str, Any]) -> float | None:
    value = (event.get("latency_s") or {}).get("window_to_report")
    return float(value) if value is not None else None


def event_line(event: dict[str, Any]) -> str | None:
    """The console line of a pipeline event (``None`` for events not shown, e.g. the pipeline's summary)."""
    kind = event.get("event")
    if kind not in LINE_EVENTS:
        return None
    if kind == "device":
        return f"device    {event.get('kind')}: {event.get('message', '')}".rstrip()
    end_s = (event.get("window") or {}).get("end_s")
    when = f"t={end_s:6.1f} s" if end_s is not None else "t=     ? s"
    if kind == "dsp_error":
        error = event.get("error") or {}
        return f"{when}  dsp_error  {error.get('type')}: {error.get('message')}"
    hr = (event.get("measurements") or {}).get("heart_rate_bpm")
    parts = [when, f"{kind:<9}", f"HR {hr:3.0f} bpm" if hr is not None else "HR   - bpm",
             event.get("rhythm") or "rhythm n/a"]
    if kind == "report":
        sentence = first_sentence(event.get("text"))
        parts.append(f'"{sentence}"' if sentence else "(empty text)")
        if event.get("discrepancies"):
            parts.append(f"{len(event['discrepancies'])} claim(s) contradict the DSP")
    elif kind == "rejected":
        parts.append(f"quality gate: {event.get('gate_reason')}")
    elif kind == "model_error":
        error = event.get("error") or {}
        parts.append(f"model failed: {error.get('type')}: {error.get('message')}")
    elif kind == "critical":
        found = [c.get("message") or c.get("rule") for c in event.get("critical") or []]
        parts.append("CRITICAL: " + "; ".join(str(f) for f in found))
    parts.append(f"quality {quality_flags(event)}")
    latency = window_to_report_s(event)
    if latency is not None:
        parts.append(f"latency {latency:.2f} s")
    return "  ".join(parts)


class ConsoleSink:
    """A live-pipeline sink (``emit`` / ``close``) that writes ``event_line`` through ``write`` and keeps, per
    report event, what the summary needs (kind, window, HR, rhythm, latency, text present)."""

    name = "console"

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any], window: LiveWindow | None = None,
             reference: EcgRecord | None = None) -> None:
        line = event_line(event)
        with self._lock:
            if event.get("event") in ("report", "rejected", "model_error", "critical"):
                self.events.append({
                    "event": event["event"],
                    "record": event.get("record"),
                    "window": (event.get("window") or {}).get("index"),
                    "heart_rate_bpm": (event.get("measurements") or {}).get("heart_rate_bpm"),
                    "rhythm": event.get("rhythm"),
                    "window_to_report_s": window_to_report_s(event),
                    "has_reference": isinstance(event.get("reference"), dict)
                    and "error" not in event["reference"],
                })
            if line is not None:
                self._write(line)

    def close(self) -> None:
        return None
