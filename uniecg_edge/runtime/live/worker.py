"""The model worker: interprets the newest window in its own thread; stale windows are skipped, never queued.

``LatestSlot`` holds at most one item: ``offer`` replaces what is waiting (the replaced item is counted as
skipped), ``take`` hands out the newest. So the worker always starts on the newest window, memory stays flat
however slow the model is, and the fast path never waits for it.

``ModelWorker`` isolates the model: an exception from ``interpret`` or ``generate`` is handed to ``on_done`` as
the error of that window (the pipeline reports it) and the worker goes on with the next window. The pipeline
restarts the thread should it die anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ...record import EcgRecord
from ...report import Report
from .config import ReferenceSettings
from .interpreter import Interpreter
from .reference import ReferenceResult, generate_reference
from .windows import LiveWindow

log = logging.getLogger(__name__)

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item, latest-wins hand-off between threads."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.offered = 0
        self.taken = 0
        self.skipped = 0

    def offer(self, item: T) -> T | None:
        """Put ``item`` in the slot; returns the item it replaced (now skipped), if any. Never waits."""
        with self._cond:
            replaced = self._item
            if replaced is not None:
                self.skipped += 1
            self._item = item
            self.offered += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: float) -> T | None:
        """The waiting item (the newest offered), or None after ``timeout`` s or once closed and empty."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            if item is not None:
                self.taken += 1
            return item

    def discard(self) -> T | None:
        """Empty the slot (counted as skipped); returns what was waiting."""
        with self._cond:
            item, self._item = self._item, None
            if item is not None:
                self.skipped += 1
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._item is not None


@dataclass
class Job:
    """A window for the model, with its DSP report (which the model's text is added to)."""

    window: LiveWindow
    report: Report
    offered_t: float = field(default_factory=time.time)


@dataclass
class JobResult:
    job: Job
    report: Report | None  # None when the model failed
    error: BaseException | None
    reference: ReferenceResult | None
    started_t: float
    finished_t: float


DoneCallback = Callable[[JobResult], None]


class ModelWorker(threading.Thread):
    """Takes jobs from ``slot`` until it is closed and empty; calls ``on_done`` with each result."""

    def __init__(self, interpreter: Interpreter, slot: LatestSlot[Job], on_done: DoneCallback, *,
                 max_new_tokens: int | None = None, reference: ReferenceSettings | None = None,
                 generation: int = 0) -> None:
        super().__init__(name=f"uniecg-model-worker-{generation}", daemon=True)
        self.interpreter = interpreter
        self.slot = slot
        self.on_done = on_done
        self.max_new_tokens = max_new_tokens
        self.reference = reference
        self.busy_since: float | None = None
        self.busy_window: int | None = None
        self.completed = 0
        self.failed = 0
        self.fatal: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                job = self.slot.take(timeout=0.2)
                if job is None:
                    if self.slot.closed:
                        return
                    continue
                self._run_job(job)
        except BaseException as exc:  # noqa: BLE001 - the pipeline sees .fatal and restarts the worker
            self.fatal = exc
            log.exception("model worker died")

    def _run_job(self, job: Job) -> None:
        started = time.time()
        self.busy_since, self.busy_window = time.monotonic(), job.window.index
        report: Report | None = None
        reference: ReferenceResult | None = None
        error: BaseException | None = None
        try:
            report = self._interpret(job.window.record, job.report)
            if self.reference is not None:
                reference = self._reference(job.window.record, report)
            self.completed += 1
        except Exception as exc:  # noqa: BLE001 - crash isolation: the window's error, not the loop's
            error = exc
            self.failed += 1
            log.warning("model failed on window %d: %s: %s", job.window.index, type(exc).__name__, exc)
        finally:
            self.busy_since, self.busy_window = None, None
        self.on_done(JobResult(job, report, error, reference, started, time.time()))

    def _reference(self, record: EcgRecord, report: Report) -> ReferenceResult | None:
        assert self.reference is not None
        try:
            result = generate_reference(self.interpreter, record, report, self.reference)
        except Exception as exc:  # noqa: BLE001 - the report stands without its reference
            log.warning("reference generation failed on %s: %s: %s", record.name, type(exc).__name__, exc)
            report.extra["reference"] = {"error": {"type": type(exc).__name__, "message": str(exc)}}
            return None
        report.extra["reference"] = result.comparison
        return result

    def _interpret(self, record: EcgRecord, base: Report) -> Report:
        if self.max_new_tokens is not None:
            return self.interpreter.interpret(record, base_report=base,  # type: ignore[call-arg]
                                              max_new_tokens=self.max_new_tokens)
        return self.interpreter.interpret(record, base_report=base)
