"""``LivePipeline``: device → recording + windows → fast path (DSP, quality gate, critical) → model worker → sinks.

Three threads (DESIGN.md §5)::

    acquisition thread   device.read → ChunkQueue (bounded, never blocks)
    the calling thread   ChunkQueue → StreamRecorder (every sample, at once) → GapTracker → WindowMaker →
                         fast path per window: analyze_window → quality gate →
                           failed: a "rejected" report (flags, no model text) · critical findings: a "critical"
                           report at once · passed: offered to the model worker (latest-wins slot)
    model worker         newest window → interpreter.interpret (+ reference) → a "report" (or "model_error")

Each JSON line carries ``event``: ``report`` (one per interpreted window), ``rejected``, ``critical``,
``model_error`` (a window's DSP report with the model's ``error``), ``dsp_error`` (a window whose analysis
failed), ``measurement`` (DSP only, when there is no model), ``device`` (``kind``: fault, reopened, reconnected,
gap, end_of_source, recording_failed, model_stalled, worker_restarted) and a final ``summary``.

Start-up checks raise one-line errors (lead set the model cannot use, a device that sends nothing within
``startup_timeout_s``); afterwards faults are reported and the loop goes on. ``request_stop`` (SIGINT, SIGTERM)
ends the run cleanly: the device is stopped, every sample already read is recorded, the recording closed.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ... import __version__
from ...devices.base import Device
from ...dsp import AnalysisConfig
from ...errors import DeviceError, UniEcgError
from ...record import EcgRecord
from ...report import Report
from .acquisition import AcquisitionThread, ChunkQueue, LiveChunk
from .config import LiveConfig
from .fastpath import DEFAULT_ANALYSIS, analyze_window, quality_gate
from .gaps import GapTracker
from .interpreter import Interpreter
from .recorder import StreamRecorder
from .sinks import SinkSet
from .stats import RunCounters
from .windows import LeadPlan, LiveWindow, WindowMaker
from .worker import Job, JobResult, LatestSlot, ModelWorker

log = logging.getLogger(__name__)


class LivePipeline:
    """One live run. ``run()`` blocks (in the calling thread) until the duration, the end of the source or
    ``request_stop()``, and returns the summary."""

    def __init__(self, device: Device, interpreter: Interpreter | None, config: LiveConfig, sinks: SinkSet, *,
                 record_path: str | Path | None = None, analysis: AnalysisConfig = DEFAULT_ANALYSIS,
                 name: str = "live", meta: dict[str, Any] | None = None) -> None:
        self.device = device
        self.interpreter = interpreter
        self.config = config
        self.sinks = sinks
        self.record_path = Path(record_path) if record_path is not None else None
        self.analysis = analysis
        self.name = name
        self.meta = dict(meta or {})
        self.plan = self._plan()
        self.counters = RunCounters()
        self.recorder: StreamRecorder | None = None
        self.queue: ChunkQueue | None = None
        self.acquisition: AcquisitionThread | None = None
        self.worker: ModelWorker | None = None
        self.slot: LatestSlot[Job] = LatestSlot()
        self.gaps = GapTracker()
        self.windows: WindowMaker | None = None
        self.stopped_by: str | None = None
        self._stop = threading.Event()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._sinks_open = True
        self._stall_reported: int | None = None
        self._consumed_end = 0
        self._started = False
        self.recording_error: str | None = None

    # ---- start-up ------------------------------------------------------------------------------------------
    def _plan(self) -> LeadPlan:
        info = self.device.info
        plan = LeadPlan.from_leads(info.leads, source=info.url)
        if self.interpreter is not None:
            plan.require_model_leads(info.url)
        return plan

    def start(self) -> None:
        """Open the device, create the recording, start the threads, and wait for the first samples."""
        if self._started:
            return
        self._started = True
        if not self.device.is_open:
            self.device.open()
        self.plan = self._plan()  # drivers may refine their channels on open
        info = self.device.info
        cfg = self.config
        if self.record_path is not None:
            self.recorder = StreamRecorder(self.record_path, info.fs, info.leads, info.mv_per_count, cfg.flush_s,
                                           comments=[f"device: {info.url}", f"uniecg-edge {__version__} run"])
            self.recorder.write_sidecar({"config": cfg.to_dict(), "device": info.to_dict(), "summary": None})
        self.windows = WindowMaker(self.plan, info.fs, window_s=cfg.window_s, hop_s=cfg.hop_s,
                                   with_lead_off=info.lead_off_detection, name=self.name, meta=self.meta)
        self.queue = ChunkQueue(int(cfg.queue_s * info.fs))
        limit = int(round(cfg.duration_s * info.fs)) if cfg.duration_s is not None else None
        self.acquisition = AcquisitionThread(self.device, self.queue, on_event=self._events.append,
                                             read_timeout=cfg.read_timeout_s, limit_rows=limit,
                                             reopen_first_s=cfg.reopen_first_s, reopen_cap_s=cfg.reopen_cap_s)
        self.acquisition.start()
        deadline = time.monotonic() + cfg.startup_timeout_s
        while not self.acquisition.first_sample.wait(0.05):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
        acq = self.acquisition
        if not acq.first_sample.is_set() or acq.startup_error is not None or (acq.error and not acq.rows_read):
            acq.stop()
            acq.join(timeout=5.0)
            self._abandon_recording()
            if self._stop.is_set() and acq.startup_error is None:
                return
            error = acq.startup_error or acq.error
            if isinstance(error, UniEcgError):
                raise error
            reason = f" ({type(error).__name__}: {error})" if error is not None else ""
            raise DeviceError(f"{info.url}: no samples within {cfg.startup_timeout_s:g} s{reason} "
                              "(is it powered, connected and streaming?)")
        if self.interpreter is not None:
            self._start_worker()
        log.info("live run on %s: %g Hz, leads %s (analysis: %s)", info.url, info.fs, ",".join(info.leads),
                 ",".join(self.plan.leads))

    def _abandon_recording(self) -> None:
        if self.recorder is not None:
            self.recorder.close(["no samples: start-up failed"])

    def _start_worker(self) -> None:
        assert self.interpreter is not None
        self.worker = ModelWorker(self.interpreter, self.slot, self._on_model_done,
                                  max_new_tokens=self.config.max_new_tokens, reference=self.config.reference,
                                  generation=self.counters.worker_restarts)
        self.worker.start()

    # ---- the loop ------------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        """End the run soon (safe from a signal handler or another thread)."""
        if self.stopped_by is None:
            self.stopped_by = reason
        self._stop.set()

    def run(self) -> dict[str, Any]:
        """Run until the duration, the end of the source or ``request_stop``; returns the summary."""
        try:
            self.start()
        except BaseException:
            self._sinks_open = False
            self.sinks.close()
            raise
        try:
            if self.acquisition is None or not self.acquisition.first_sample.is_set():
                return self._finish(interrupted=True)
            assert self.queue is not None
            while not self._stop.is_set():
                chunk = self.queue.get(timeout=0.1)
                if chunk is not None:
                    self._consume(chunk)
                self._flush_events()
                self._supervise()
                if self.acquisition.finished.is_set() and len(self.queue) == 0:
                    break
        except KeyboardInterrupt:
            self.request_stop("KeyboardInterrupt")
        except BaseException:
            self.request_stop("error")
            self._finish(interrupted=True)  # the recording is closed whatever happened
            raise
        interrupted = self._stop.is_set()
        return self._finish(interrupted=interrupted)

    def _consume(self, chunk: LiveChunk, to_model: bool = True) -> None:
        assert self.windows is not None
        if self.recorder is not None:
            try:
                self.recorder.append(chunk.start, chunk.samples)
                self.recorder.maybe_flush()
            except OSError as exc:  # disk full, device removed: say so loudly, the live reports go on
                self._device_event({"event": "device", "kind": "recording_failed", "index": chunk.start,
                                    "message": f"recording {self.recorder.data_path} failed: {exc}; "
                                               "the run goes on without it"})
                self.recording_error = str(exc)
                failed, self.recorder = self.recorder, None
                with contextlib.suppress(OSError):
                    failed.close()
        for start, n in self.gaps.feed(chunk.start, chunk.samples):
            self._gap_event(start, n)
        if chunk.record_only:  # recorded above; the analysis skips these rows (its windows see them as missing)
            self._consumed_end = chunk.end
            return
        for window in self.windows.push(chunk.start, chunk.samples, chunk.lead_off, chunk.t_host):
            self._fast_path(window, to_model)
        self._consumed_end = chunk.end

    def _fast_path(self, window: LiveWindow, to_model: bool) -> None:
        counters = self.counters
        try:
            report = analyze_window(window, self.analysis, self.config.device_lead_off_fraction)
        except Exception as exc:  # noqa: BLE001 - one window's analysis failing must not stop the loop
            counters.windows += 1
            counters.dsp_errors += 1
            log.exception("analysis of window %d failed", window.index)
            self._emit({"event": "dsp_error", "record": window.record.name, "window": window.describe(),
                        "error": {"type": type(exc).__name__, "message": str(exc)}}, window)
            return
        counters.windows += 1
        counters.latencies["dsp"].add(report.extra["latency_s"]["dsp"])
        passed, reason = quality_gate(report)
        if not passed:
            counters.rejected += 1
            latency = time.time() - window.completed_t
            counters.latencies["window_to_rejected"].add(latency)
            report.extra["latency_s"]["window_to_report"] = round(latency, 4)
            self._emit_report("rejected", report, window, gate_reason=reason)
            return
        if report.critical:
            counters.critical_alerts += 1
            self._emit_report("critical", report, window)
        if self.interpreter is None:
            self._emit_report("measurement", report, window)
            return
        if to_model:
            counters.offered += 1
            self.slot.offer(Job(window, report))

    def _on_model_done(self, result: JobResult) -> None:
        """Called in the worker thread."""
        counters = self.counters
        window = result.job.window
        latency = result.finished_t - window.completed_t
        timing = {"window_to_report": round(latency, 4), "model": round(result.finished_t - result.started_t, 4),
                  "waited": round(result.started_t - result.job.offered_t, 4)}
        if result.error is not None or result.report is None:
            counters.model_errors += 1
            report = result.job.report
            report.text, report.claims, report.discrepancies = None, None, None
            report.extra.setdefault("latency_s", {}).update(timing)
            error = {"type": type(result.error).__name__, "message": str(result.error)}
            self._emit_report("model_error", report, window, error=error)
            return
        counters.interpreted += 1
        counters.latencies["window_to_report"].add(latency)
        counters.latencies["model"].add(timing["model"])
        report = result.report
        report.extra.setdefault("latency_s", {}).update(timing)
        report.extra.setdefault("window", window.describe())
        reference = result.reference.aligned if result.reference is not None else None
        self._emit_report("report", report, window, reference=reference)

    # ---- events --------------------------------------------------------------------------------------------
    def _emit(self, event: dict[str, Any], window: LiveWindow | None = None,
              reference: EcgRecord | None = None) -> None:
        if self._sinks_open:
            self.sinks.emit({**event, "time_unix": round(time.time(), 3)}, window, reference)

    def _emit_report(self, kind: str, report: Report, window: LiveWindow, *, reference: EcgRecord | None = None,
                     **extra: Any) -> None:
        self._emit({"event": kind, **report.to_dict(), **extra}, window, reference)

    def _gap_event(self, start: int, n: int) -> None:
        fs = self.device.info.fs
        self.counters.gaps += 1
        self.counters.gap_samples += n
        self._device_event({"event": "device", "kind": "gap", "index": start, "samples": n,
                            "start_s": round(start / fs, 4), "seconds": round(n / fs, 4),
                            "message": f"{n} samples missing from {start / fs:.2f} s"})

    def _device_event(self, event: dict[str, Any]) -> None:
        self.counters.device_events += 1
        log.warning("%s", event.get("message", event))
        self._emit(event)

    def _flush_events(self) -> None:
        while self._events:
            self._device_event(self._events.popleft())

    def _supervise(self) -> None:
        worker = self.worker
        if worker is None or self._stop.is_set():
            return
        if not worker.is_alive():
            self.counters.worker_restarts += 1
            self._device_event({"event": "device", "kind": "worker_restarted",
                                "message": f"model worker died ({worker.fatal!r}); restarted"})
            self._start_worker()
            return
        busy = worker.busy_since
        if busy is not None and time.monotonic() - busy > self.config.model_stall_s:
            if self._stall_reported != worker.busy_window:
                self._stall_reported = worker.busy_window
                self._device_event({"event": "device", "kind": "model_stalled", "window": worker.busy_window,
                                    "message": f"the model has been on window {worker.busy_window} for more than "
                                               f"{self.config.model_stall_s:g} s; newer windows wait in the slot"})

    # ---- shut-down -----------------------------------------------------------------------------------------
    def _finish(self, interrupted: bool) -> dict[str, Any]:
        acq, cfg = self.acquisition, self.config
        if acq is not None:
            acq.stop()
            acq.join(timeout=cfg.read_timeout_s + 10.0)
        if self.queue is not None and self.windows is not None:
            while (chunk := self.queue.get(timeout=0.0)) is not None:
                self._consume(chunk, to_model=not interrupted)
        for start, n in self.gaps.finish():
            self._gap_event(start, n)
        self._flush_events()
        if self.worker is not None:
            if interrupted:
                self.slot.discard()
            self.slot.close()
            self.worker.join(timeout=cfg.stop_grace_s if interrupted else cfg.drain_timeout_s)
            if self.worker.is_alive():
                log.warning("the model is still on window %s; not waiting for it", self.worker.busy_window)
        if self.stopped_by is None:
            self.stopped_by = ("end_of_source" if acq is not None and acq.source_ended
                               else "error" if acq is not None and acq.error is not None else "duration")
        summary = self.summary()
        if self.recorder is not None:
            try:
                self.recorder.close([f"samples: {self.recorder.samples_written}, missing rows inserted: "
                                     f"{self.recorder.missing_rows}, gaps: {self.counters.gaps}",
                                     f"stopped by: {self.stopped_by}"])
                self.recorder.write_sidecar({"config": cfg.to_dict(), "device": self.device.info.to_dict(),
                                             "summary": summary})
            except OSError as exc:
                log.error("closing the recording %s failed: %s", self.recorder.header_path, exc)
                summary["recording_error"] = str(exc)
        self._emit({"event": "summary", **summary})
        self._sinks_open = False
        self.sinks.close()
        return summary

    def summary(self) -> dict[str, Any]:
        info = self.device.info
        acq, rec = self.acquisition, self.recorder
        acquired = acq.rows_read if acq is not None else 0
        dropped = self.queue.overflow_rows if self.queue is not None else 0
        stats = acq.device_stats() if acq is not None else self.device.stats.to_dict()
        data: dict[str, Any] = {
            "device": {"url": info.url, "kind": info.kind, "fs": info.fs, "leads": list(info.leads)},
            "analysis_leads": list(self.plan.leads),
            "stopped_by": self.stopped_by,
            "samples": {
                "acquired": acquired,  # rows the device delivered, its own missing rows included
                "consumed": self._consumed_end,
                "recorded": rec.samples_written if rec is not None else None,
                "dropped": dropped,  # rows the analysis could not take (queue full); recorded, not analysed
                "device_missing": stats.get("missing_samples", 0),
            },
            "signal_s": round(self._consumed_end / info.fs, 3),
            "recording": str(rec.header_path) if rec is not None else None,
            "recording_error": self.recording_error,
            "queue_peak_s": round(self.queue.peak_rows / info.fs, 3) if self.queue is not None else None,
            "device_faults": acq.faults if acq is not None else 0,
            "device_reopens": acq.reopens if acq is not None else 0,
            "device_stats": stats,
            **self.counters.to_dict(),
            "skipped_stale": self.slot.skipped,  # replaced by a newer window before the model took them
            "sink_errors": list(self.sinks.errors),
        }
        return data


@contextlib.contextmanager
def stop_on_signals(pipeline: LivePipeline) -> Iterator[None]:
    """SIGINT and SIGTERM end ``pipeline`` cleanly (first signal); the previous handlers come back afterwards.
    Only in the main thread (elsewhere it does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum: int, frame: object) -> None:
        pipeline.request_stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
