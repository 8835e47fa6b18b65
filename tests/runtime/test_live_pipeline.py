"""The live pipeline end to end in-process: real devices (synthetic generator, serial simulators on real
pseudo-terminals), real WFDB recordings, the real default model; scripted interpreters only where a test needs a
model that is slow or fails on purpose."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.devices import device_from_url
from uniecg_edge.devices.simulators import SimulatorConfig, create_simulator
from uniecg_edge.devices.simulators.pty_port import PtyPort
from uniecg_edge.errors import DeviceError
from uniecg_edge.model.pipeline import TorchPipeline
from uniecg_edge.runtime.live import LiveConfig, LivePipeline, SinkSet
from uniecg_edge.wfdb_io import read_record

from .live_support import ScriptedInterpreter, of_kind, read_events, synthetic_truth

REPORT_KEYS = {"record", "fs", "leads", "duration_s", "quality", "measurements", "rhythm", "critical", "text",
               "claims", "discrepancies", "provenance"}


@pytest.fixture(scope="module")
def torch_model(tiny_model_dir: Path) -> TorchPipeline:
    return TorchPipeline.from_pretrained(tiny_model_dir)


@pytest.fixture
def simulators():
    started = []

    def make(kind: str, **config: object):
        sim = create_simulator(kind, SimulatorConfig(**config))  # type: ignore[arg-type]
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
        assert sim.error is None, f"simulator thread failed: {sim.error!r}"


def run_live(tmp_path: Path, url: str, interpreter, **config: object) -> tuple[dict, list[dict], Path]:
    jsonl = tmp_path / "out.jsonl"
    record = tmp_path / "rec"
    pipeline = LivePipeline(device_from_url(url), interpreter, LiveConfig(**config),  # type: ignore[arg-type]
                            SinkSet.build([("jsonl", str(jsonl))]), record_path=record, name="t")
    summary = pipeline.run()
    return summary, read_events(jsonl), record


def assert_reports_are_whole(events: list[dict]) -> None:
    reports = of_kind(events, "report")
    assert reports
    for report in reports:
        assert REPORT_KEYS <= set(report)
        assert report["text"] and report["window"]["end_index"] - report["window"]["start_index"] > 0
        assert report["latency_s"]["window_to_report"] >= report["latency_s"]["model"] > 0
    indices = [r["window"]["index"] for r in reports]
    assert indices == sorted(set(indices)), "each window interpreted at most once, in order"


def test_no_sample_lost_over_60_s_of_12_leads_at_500_hz_at_20x_with_the_model(tmp_path, torch_model):
    url = "synthetic://?speed=20&seed=5"
    summary, events, record = run_live(tmp_path, url, torch_model, duration_s=60.0)
    samples = summary["samples"]
    assert samples["acquired"] == samples["recorded"] == samples["consumed"] >= 30_000
    assert samples["dropped"] == 0 and samples["device_missing"] == 0 and summary["gaps"] == 0
    rec = read_record(record)
    assert rec.n_samples == samples["recorded"] and rec.fs == 500.0
    np.testing.assert_allclose(rec.signal.T, synthetic_truth(url, rec.n_samples), atol=5e-6)  # 10 nV per count
    assert summary["windows"] == 26 and summary["stopped_by"] == "duration"
    assert summary["interpreted"] + summary["skipped_stale"] == summary["offered"] == 26
    assert_reports_are_whole(events)
    assert len(of_kind(events, "report")) == summary["interpreted"]
    assert of_kind(events, "report")[-1]["window"]["index"] == 25  # the end of a run waits for the newest window
    assert events[-1]["event"] == "summary"


@pytest.mark.parametrize("kind,leads", [("openbci", 8), ("openbci-daisy", 16)])
def test_no_sample_lost_through_a_serial_simulator_at_20x(tmp_path, torch_model, simulators, kind, leads):
    sim = simulators(kind, speed=20)
    summary, events, record = run_live(tmp_path, f"{kind}://{sim.path}", torch_model, duration_s=60.0)
    samples = summary["samples"]
    assert samples["dropped"] == 0 and samples["device_missing"] == 0
    assert samples["recorded"] == samples["acquired"] >= 60 * sim.fs
    import wfdb

    rec = wfdb.rdrecord(str(record))  # a Daisy's 16 channels are all recorded
    assert rec.n_sig == leads and rec.sig_len == samples["recorded"]
    truth = sim.expected_mv(sim.sessions[0][0], rec.sig_len)
    np.testing.assert_allclose(rec.p_signal, truth, rtol=1e-6, atol=1e-9)  # the ADC counts themselves
    assert summary["analysis_leads"] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert_reports_are_whole(events)
    assert set(of_kind(events, "report")[0]["leads"]) >= {"III", "aVR", "aVL", "aVF"}  # derived for the model


def test_a_model_that_raises_is_reported_and_the_loop_goes_on(tmp_path):
    url = "synthetic://?speed=20&seed=1"
    interpreter = ScriptedInterpreter(delay_s=0.02, fail_every=2)
    summary, events, record = run_live(tmp_path, url, interpreter, duration_s=40.0)
    errors = of_kind(events, "model_error")
    assert errors and summary["model_errors"] == len(errors)
    assert all(e["error"]["type"] == "RuntimeError" and "model exploded" in e["error"]["message"] for e in errors)
    assert all(e["text"] is None and e["measurements"]["heart_rate_bpm"] is not None for e in errors)
    reports = of_kind(events, "report")
    assert reports and max(r["window"]["index"] for r in reports) > min(e["window"]["index"] for e in errors)
    rec = read_record(record)
    assert rec.n_samples == summary["samples"]["acquired"] >= 20_000
    np.testing.assert_allclose(rec.signal.T, synthetic_truth(url, rec.n_samples), atol=5e-6)


def test_a_window_whose_analysis_fails_is_reported_and_the_loop_goes_on(tmp_path, monkeypatch):
    from uniecg_edge.runtime.live import pipeline as live_pipeline

    real = live_pipeline.analyze_window

    def flaky(window, *args, **kwargs):
        if window.index == 1:
            raise FloatingPointError("a DSP bug on this window")
        return real(window, *args, **kwargs)

    monkeypatch.setattr(live_pipeline, "analyze_window", flaky)
    summary, events, _ = run_live(tmp_path, "synthetic://?speed=20", ScriptedInterpreter(), duration_s=20.0)
    failed = of_kind(events, "dsp_error")
    assert [e["window"]["index"] for e in failed] == [1] and failed[0]["error"]["type"] == "FloatingPointError"
    assert summary["dsp_errors"] == 1 and summary["windows"] == 6
    assert {r["window"]["index"] for r in of_kind(events, "report")} >= {0, 5}


class _DiesOnce(ScriptedInterpreter):
    def interpret(self, record, *, base_report=None):
        if not self.calls:
            self.calls.append(-1)
            raise SystemExit("the worker thread itself goes down")
        return super().interpret(record, base_report=base_report)


def test_a_dead_worker_thread_is_restarted(tmp_path):
    summary, events, _ = run_live(tmp_path, "synthetic://?speed=20", _DiesOnce(), duration_s=30.0)
    assert summary["worker_restarts"] == 1
    restarts = [e for e in of_kind(events, "device") if e["kind"] == "worker_restarted"]
    assert len(restarts) == 1 and "SystemExit" in restarts[0]["message"]
    assert summary["interpreted"] >= 1 and of_kind(events, "report")


def test_a_slow_model_skips_stale_windows_and_stays_current(tmp_path):
    interpreter = ScriptedInterpreter(delay_s=0.4)
    summary, events, _ = run_live(tmp_path, "synthetic://?speed=20", interpreter, duration_s=50.0)
    reports = of_kind(events, "report")
    assert summary["windows"] == 21 and len(reports) == summary["interpreted"] < summary["windows"]
    assert summary["skipped_stale"] == summary["offered"] - summary["interpreted"] > 0
    assert interpreter.calls == sorted(set(interpreter.calls))
    # newest-first: no report waits behind a backlog (a FIFO queue would make the wait grow window after window)
    waits = [r["latency_s"]["waited"] for r in reports]
    assert max(waits) < 3 * 0.4, waits  # a queue would reach seconds here: ~21 windows arrive per 5 interpreted
    assert reports[-1]["window"]["index"] == 20


def test_windows_that_fail_the_quality_gate_get_flags_and_no_text(tmp_path, simulators):
    sim = simulators("hackeeg", speed=10, lead_off=((9.0, 21.0),))  # every electrode off from 9 s to 21 s
    interpreter = ScriptedInterpreter()
    url = f"hackeeg://{sim.path}?leads=I,II,V1,V2,V3,V4,V5,V6"
    summary, events, record = run_live(tmp_path, url, interpreter, duration_s=36.0)
    rejected = of_kind(events, "rejected")
    assert rejected and summary["rejected"] == len(rejected)
    for event in rejected:
        assert event["text"] is None and event["claims"] is None and event["gate_reason"]
        assert {"lead_off", "railed"} & set(event["quality"]["leads"]["I"]["flags"])  # an electrode at its rail
        assert event["window"]["index"] not in interpreter.calls  # the model never saw it
    inside = [e for e in rejected if e["window"]["index"] in (4, 5, 6)]  # windows 8-18 s, 10-20 s, 12-22 s
    assert len(inside) == 3
    for event in inside:
        assert not event["quality"]["usable"] and event["gate_reason"] == "no usable lead"
        assert all("lead_off" in lead["flags"] for lead in event["quality"]["leads"].values())  # derived too
    assert of_kind(events, "report")  # the clean windows after it are interpreted
    rec = read_record(record)
    assert rec.n_samples == summary["samples"]["recorded"] and summary["samples"]["dropped"] == 0


def test_a_device_that_goes_away_and_comes_back_is_survived(tmp_path, simulators):
    link = tmp_path / "ttyCYTON"
    sim = simulators("openbci", speed=4, link=str(link))
    jsonl, record = tmp_path / "out.jsonl", tmp_path / "rec"
    pipeline = LivePipeline(device_from_url(f"openbci://{link}?reconnect=5"), ScriptedInterpreter(),
                            LiveConfig(window_s=2.0, hop_s=1.0, duration_s=20.0),
                            SinkSet.build([("jsonl", str(jsonl))]), record_path=record)
    import threading

    threading.Timer(1.5, sim.disconnect, args=(0.6,)).start()
    summary = pipeline.run()
    events = read_events(jsonl)
    kinds = [e["kind"] for e in of_kind(events, "device")]
    assert "reconnected" in kinds and "gap" in kinds
    gap = next(e for e in of_kind(events, "device") if e["kind"] == "gap")
    assert gap["samples"] > 0.3 * 250
    rec = read_record(record)
    missing = np.isnan(rec.signal[:8]).all(axis=0)
    assert missing.sum() == gap["samples"] and np.flatnonzero(missing)[0] == gap["index"]
    resumed = gap["index"] + gap["samples"]
    first0, first1 = sim.sessions[0][0], sim.sessions[1][0]
    np.testing.assert_allclose(rec.signal[:8, : gap["index"]].T, sim.expected_mv(first0, gap["index"]), atol=6e-6)
    np.testing.assert_allclose(rec.signal[:8, resumed: resumed + 100].T, sim.expected_mv(first1, 100), atol=6e-6)
    after = [r for r in of_kind(events, "report") if r["window"]["start_index"] >= resumed]
    assert after, "windows after the outage are interpreted"
    assert summary["stopped_by"] == "duration"


def test_a_device_that_gives_up_is_reopened_by_the_pipeline(tmp_path, simulators):
    link = tmp_path / "ttyHACK"
    sim = simulators("hackeeg", speed=8, link=str(link))
    jsonl = tmp_path / "out.jsonl"
    pipeline = LivePipeline(device_from_url(f"hackeeg://{link}?reconnect=0.2&leads=I,II,V1,V2,V3,V4,V5,V6"),
                            ScriptedInterpreter(),
                            LiveConfig(window_s=2.0, hop_s=1.0, duration_s=40.0, reopen_first_s=0.1),
                            SinkSet.build([("jsonl", str(jsonl))]), record_path=tmp_path / "rec")
    import threading

    threading.Timer(1.5, sim.disconnect, args=(1.0,)).start()
    t0 = time.monotonic()
    summary = pipeline.run()
    assert time.monotonic() - t0 < 30
    events = read_events(jsonl)
    kinds = [e["kind"] for e in of_kind(events, "device")]
    assert kinds.index("fault") < kinds.index("reopened") and "gap" in kinds
    assert summary["device_faults"] == 1 and summary["device_reopens"] == 1
    last_fault = max(e["index"] for e in of_kind(events, "device") if e["kind"] == "fault")
    assert any(r["window"]["start_index"] > last_fault for r in of_kind(events, "report"))
    assert len(sim.sessions) >= 2


def test_a_silent_device_fails_at_start_up_in_one_line(tmp_path):
    port = PtyPort()
    try:
        pipeline = LivePipeline(device_from_url(f"olimex://{port.path}?timeout=0.5"), None,  # DSP only: 1 lead
                                LiveConfig(startup_timeout_s=5.0), SinkSet.build([("jsonl", str(tmp_path / "j"))]),
                                record_path=tmp_path / "rec")
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=r"no valid data from olimex .* for 0.5 s") as info:
            pipeline.run()
        assert "\n" not in str(info.value) and time.monotonic() - t0 < 5
    finally:
        port.close()


@pytest.mark.slow  # exporting the int8 bundle takes ~30 s on 2 cores; the benchmark runs this path for 10 minutes
def test_the_int8_bundle_runs_live_with_no_sample_lost(tmp_path, tiny_model_dir):
    from uniecg_edge.export import ExportOptions, export_bundle
    from uniecg_edge.runtime import EdgeRuntime

    export_bundle(tmp_path / "int8", tiny_model_dir, ExportOptions(precision="int8"))
    runtime = EdgeRuntime.from_bundle(tmp_path / "int8", backend="onnxruntime")
    url = "synthetic://?speed=20&seed=2"
    summary, events, record = run_live(tmp_path, url, runtime, duration_s=40.0)
    assert summary["samples"]["dropped"] == 0 and summary["samples"]["recorded"] == summary["samples"]["acquired"]
    rec = read_record(record)
    np.testing.assert_allclose(rec.signal.T, synthetic_truth(url, rec.n_samples), atol=5e-6)
    assert_reports_are_whole(events)
    assert {r["provenance"]["backend"] for r in of_kind(events, "report")} == {"onnxruntime"}
    assert {r["provenance"]["precision"] for r in of_kind(events, "report")} == {"int8"}
