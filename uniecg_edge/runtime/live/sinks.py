"""Where the live pipeline's output goes: JSON lines (default), a PNG per report, an LSL outlet.

Every sink gets every event (``emit(event, window, reference)``); ``SINKS`` maps a name to a factory
``factory(target) -> Sink | None`` (``None``: the sink cannot run here and is skipped, with a warning).

* ``jsonl``: one JSON object per line (DESIGN.md §8 keys plus ``event``), flushed line by line; target a path or
  ``-`` for stdout.
* ``png``: the window of each report in the 12-lead paper layout (with the reference drawn over it when there is
  one), written by a thread of its own from a latest-wins slot, so a slow disk or plot never holds up the loop;
  target a folder.
* ``lsl``: each event as a JSON string sample on an irregular-rate LSL ``Markers`` outlet (pylsl, imported only
  here; skipped when it is not installed); target the stream name.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from ...errors import InputError
from ...record import EcgRecord
from ...registry import Registry
from .windows import LiveWindow
from .worker import LatestSlot

log = logging.getLogger(__name__)

REPORT_EVENTS = ("report", "rejected", "model_error")  # events that carry a window's report


class Sink(Protocol):
    name: str

    def emit(self, event: dict[str, Any], window: LiveWindow | None = None,
             reference: EcgRecord | None = None) -> None: ...

    def close(self) -> None: ...


SinkFactory = Callable[[str], "Sink | None"]
SINKS: Registry[SinkFactory] = Registry("sink")


class JsonlSink:
    name = "jsonl"

    def __init__(self, target: str) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._owned = target != "-"
        try:
            self._fh: IO[str] = open(target, "w", encoding="utf-8") if self._owned else sys.stdout
        except OSError as exc:
            raise InputError(f"cannot write the JSON lines file {target}: {exc.strerror or exc}") from None
        self.lines = 0

    def emit(self, event: dict[str, Any], window: LiveWindow | None = None,
             reference: EcgRecord | None = None) -> None:
        line = json.dumps(event, allow_nan=False, default=str)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            if self._owned:
                self._fh.close()
            else:
                self._fh.flush()


class PngSink:
    """A PNG snapshot per report event, drawn off the loop; snapshots that fall behind are skipped."""

    name = "png"

    def __init__(self, target: str) -> None:
        self.folder = Path(target)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the PNG folder {self.folder}: {exc.strerror or exc}") from None
        self._slot: LatestSlot[tuple[LiveWindow, EcgRecord | None, str]] = LatestSlot()
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="uniecg-png-sink", daemon=True)
        self._thread.start()

    @property
    def skipped(self) -> int:
        return self._slot.skipped

    def emit(self, event: dict[str, Any], window: LiveWindow | None = None,
             reference: EcgRecord | None = None) -> None:
        if window is None or event.get("event") not in REPORT_EVENTS:
            return
        self._slot.offer((window, reference, self._title(event)))

    @staticmethod
    def _title(event: dict[str, Any]) -> str:
        m = event.get("measurements") or {}
        hr = m.get("heart_rate_bpm")
        parts = [str(event.get("event")), event.get("rhythm") or "rhythm n/a",
                 f"HR {hr:.0f} bpm" if hr is not None else "HR n/a"]
        if event.get("event") == "rejected":
            parts.append(f"quality gate: {event.get('gate_reason')}")
        return ", ".join(parts)

    def _run(self) -> None:
        from ...plot import plot_12lead

        while True:
            item = self._slot.take(timeout=0.5)
            if item is None:
                if self._slot.closed:
                    return
                continue
            window, reference, title = item
            path = self.folder / f"{window.record.name}.png"
            try:
                plot_12lead(window.record, path, reference=reference, title=title)
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - a failed snapshot must not stop the loop
                self.failed += 1
                log.warning("PNG snapshot %s failed: %s", path, exc)

    def close(self) -> None:
        self._slot.close()
        self._thread.join(timeout=30.0)


class LslSink:
    """Events as JSON strings on an LSL outlet (type ``Markers``, irregular rate)."""

    name = "lsl"

    def __init__(self, target: str, pylsl: Any) -> None:
        info = pylsl.StreamInfo(target or "uniecg-edge", "Markers", 1, pylsl.IRREGULAR_RATE, "string",
                                f"uniecg-edge-{target or 'reports'}")
        self._outlet = pylsl.StreamOutlet(info)
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any], window: LiveWindow | None = None,
             reference: EcgRecord | None = None) -> None:
        with self._lock:
            self._outlet.push_sample([json.dumps(event, allow_nan=False, default=str)])

    def close(self) -> None:
        self._outlet = None


@SINKS.register("jsonl")
def _jsonl(target: str) -> Sink:
    return JsonlSink(target)


@SINKS.register("png")
def _png(target: str) -> Sink:
    return PngSink(target)


@SINKS.register("lsl")
def _lsl(target: str) -> Sink | None:
    try:
        import pylsl
    except Exception as exc:  # noqa: BLE001 - ImportError, or liblsl missing (RuntimeError on some platforms)
        log.warning("LSL outlet skipped: pylsl is not usable here (%s); pip install pylsl", exc)
        return None
    return LslSink(target, pylsl)


class SinkSet:
    """All sinks of a run; a sink that raises is logged and dropped, the others go on."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)
        self.errors: list[str] = []

    @classmethod
    def build(cls, specs: list[tuple[str, str]]) -> SinkSet:
        """Sinks from (name, target) pairs; unknown names raise ``ConfigError``; unusable ones are skipped."""
        sinks = []
        for name, target in specs:
            sink = SINKS.get(name)(target)
            if sink is not None:
                sinks.append(sink)
        return cls(sinks)

    def emit(self, event: dict[str, Any], window: LiveWindow | None = None,
             reference: EcgRecord | None = None) -> None:
        for sink in list(self.sinks):
            try:
                sink.emit(event, window, reference)
            except Exception as exc:  # noqa: BLE001 - one sink failing must not stop the others or the loop
                message = f"sink {sink.name} failed and was dropped: {type(exc).__name__}: {exc}"
                log.error(message)
                self.errors.append(message)
                self.sinks.remove(sink)

    def get(self, name: str) -> Sink | None:
        return next((s for s in self.sinks if s.name == name), None)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001
                log.debug("closing sink %s failed", sink.name, exc_info=True)
