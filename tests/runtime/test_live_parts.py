"""The live pipeline's parts on their own: recorder, hand-offs, gap tracking, lead plan, quality gate, reference."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from uniecg_edge.errors import LeadError
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.record import EcgRecord
from uniecg_edge.runtime.live.acquisition import ChunkQueue, LiveChunk
from uniecg_edge.runtime.live.config import ReferenceSettings
from uniecg_edge.runtime.live.fastpath import analyze_window, quality_gate
from uniecg_edge.runtime.live.gaps import GapTracker
from uniecg_edge.runtime.live.recorder import StreamRecorder, recover_recording
from uniecg_edge.runtime.live.reference import compare_with_reference, generate_reference, reference_request
from uniecg_edge.runtime.live.windows import LeadPlan, WindowMaker
from uniecg_edge.runtime.live.worker import LatestSlot
from uniecg_edge.synth import SynthConfig, SynthStream
from uniecg_edge.wfdb_io import read_record

from .live_support import ScriptedInterpreter


def _chunks(x: np.ndarray, size: int):
    for start in range(0, x.shape[0], size):
        yield start, x[start:start + size]


def test_recorder_round_trips_every_sample_and_marks_gaps_at_their_time(tmp_path):
    rng = np.random.default_rng(1)
    leads = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6", *(f"CH{i}" for i in range(9, 17)))  # a Daisy: 16
    mv_per_count = 4.5 / 24 / (2**23 - 1) * 1000
    counts = rng.integers(-(2**23), 2**23, size=(700, 16))
    x = (counts * mv_per_count).astype(np.float32)
    x[100:103, :8] = np.nan  # half a row lost (one Daisy board)
    rec = StreamRecorder(tmp_path / "r", 125.0, leads, mv_per_count=mv_per_count, flush_s=1e9)
    for start, block in _chunks(x[:400], 37):
        rec.append(start, block)
    assert rec.append(450, x[450:]) == 50  # 50 rows never arrived: missing at their place
    rec.close()
    import wfdb

    back = wfdb.rdrecord(str(tmp_path / "r"))  # 16 signals: more than an EcgRecord holds, all kept on disk
    assert tuple(back.sig_name) == leads and back.fs == 125.0 and back.sig_len == 700
    got = back.p_signal
    assert np.isnan(got[400:450]).all()
    keep = np.ones(700, dtype=bool)
    keep[400:450] = False
    np.testing.assert_allclose(got[keep], x[keep], rtol=1e-6, atol=0)  # exact ADC counts, NaN where NaN
    assert np.array_equal(np.isnan(got[keep]), np.isnan(x[keep]))
    assert read_record(tmp_path / "r", leads=["V6", "CH16"]).n_samples == 700  # the package reads a selection

    header = wfdb.rdheader(str(tmp_path / "r"))
    raw = wfdb.rdrecord(str(tmp_path / "r"), physical=False).d_signal.astype(np.int64)
    assert header.checksum == [int(v) for v in raw.sum(axis=0) % 65536]
    assert header.init_value == [int(v) for v in raw[0]]


def test_header_never_declares_more_than_is_on_disk_and_recovery_restores_the_rest(tmp_path):
    x = SynthStream(SynthConfig(seed=3)).read(3000).T
    rec = StreamRecorder(tmp_path / "live", 500.0, STANDARD_LEADS, flush_s=1e9)
    rec.append(0, x[:1000])
    rec.flush()
    rec.append(1000, x[1000:2500])  # handed to the OS, header not rewritten yet: as after a SIGKILL now
    assert read_record(tmp_path / "live").n_samples == 1000
    assert recover_recording(tmp_path / "live") == 2500
    back = read_record(tmp_path / "live")
    np.testing.assert_allclose(back.signal.T, x[:2500], atol=5e-6)
    rec.close()


def test_chunk_queue_never_blocks_and_keeps_what_the_analysis_has_no_room_for_for_the_recording():
    q = ChunkQueue(capacity_rows=100)
    block = np.zeros((40, 2), dtype=np.float32)
    assert q.put(LiveChunk(0, block, None, 0.0)) and q.put(LiveChunk(40, block, None, 0.0))
    assert not q.put(LiveChunk(80, block, None, 0.0))  # no room for analysis: queued to be recorded only
    assert q.overflow_rows == 40 and len(q) == 3
    got = [q.get(0.0) for _ in range(3)]
    assert [(c.start, c.record_only) for c in got] == [(0, False), (40, False), (80, True)]
    assert q.get(0.01) is None
    assert q.put(LiveChunk(120, block, None, 0.0))  # the analysis' room came back as it drained


def test_latest_slot_hands_out_the_newest_and_counts_the_skipped():
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.offer(i)
    assert slot.take(0.0) == 4 and slot.skipped == 4
    assert slot.take(0.01) is None
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.take(2.0)))
    consumer.start()
    slot.offer(7)
    consumer.join(2.0)
    assert got == [7]
    slot.close()
    assert slot.take(5.0) is None  # closed and empty: at once


def test_gap_tracker_finds_nan_runs_and_jumps_across_chunks():
    tracker = GapTracker()
    a = np.ones((10, 3))
    a[7:] = np.nan
    assert tracker.feed(0, a) == []
    b = np.ones((10, 3))
    b[:2] = np.nan
    b[5, 0] = np.nan  # one channel only: not a missing row
    assert tracker.feed(10, b) == [(7, 5)]
    assert tracker.feed(30, np.ones((5, 3))) == [(20, 10)]  # the stream jumped over 20..29
    c = np.full((4, 3), np.nan)
    assert tracker.feed(35, c) == [] and tracker.finish() == [(35, 4)]


def test_lead_plan_keeps_standard_leads_and_refuses_what_the_model_cannot_use():
    daisy = LeadPlan.from_leads(("I", "II", "V1", "V2", "V3", "V4", "V5", "V6", *(f"CH{i}" for i in range(9, 17))))
    assert daisy.leads == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6") and len(daisy.ignored) == 8
    daisy.require_model_leads("openbci-daisy")
    two = LeadPlan.from_leads(("II", "V1"))
    with pytest.raises(LeadError, match=r"synthetic://\?leads=II,V1: .* \(missing I, V2, V3, V4, V5, V6;"):
        two.require_model_leads("synthetic://?leads=II,V1")
    with pytest.raises(LeadError, match="no standard ECG lead"):
        LeadPlan.from_leads(("CH1", "CH2"))


def _windows(signal: np.ndarray, fs: float, leads, lead_off=None):
    maker = WindowMaker(LeadPlan.from_leads(leads), fs, window_s=10.0, hop_s=5.0, with_lead_off=lead_off is not None)
    out = []
    for start, block in _chunks(signal.T, 250):
        flags = lead_off.T[start:start + 250] if lead_off is not None else None
        out += maker.push(start, block, flags, 0.0)
    return out


def test_windows_complete_the_limb_leads_and_sit_at_their_stream_position():
    x = SynthStream(SynthConfig(seed=2)).read(10_000)
    keep = [0, 1, 6, 7, 8, 9, 10, 11]  # what an 8-channel front end sends
    windows = _windows(x[keep], 500.0, tuple(STANDARD_LEADS[i] for i in keep))
    assert [(w.start_index, w.end_index) for w in windows] == [(0, 5000), (2500, 7500), (5000, 10000)]
    w = windows[1]
    assert set(w.record.leads) == set(STANDARD_LEADS) and set(w.derived) == {"III", "aVR", "aVL", "aVF"}
    np.testing.assert_allclose(w.record.lead("aVF"), x[5, 2500:7500], atol=1e-5)  # exact relation
    np.testing.assert_array_equal(w.record.lead("V3"), x[8, 2500:7500])


def test_device_lead_off_fails_the_gate_and_gives_flags_not_a_report():
    x = SynthStream(SynthConfig(seed=4)).read(10_000)
    leads = STANDARD_LEADS
    off = np.zeros_like(x, dtype=bool)
    off[:, 5000:] = True  # every electrode off in the second half (the device says so)
    windows = _windows(x, 500.0, leads, off)
    first, last = analyze_window(windows[0]), analyze_window(windows[-1])
    assert quality_gate(first) == (True, None)
    passed, reason = quality_gate(last)
    assert not passed and reason == "no usable lead"
    assert all("lead_off" in entry["flags"] for entry in last.quality["leads"].values())
    assert last.quality["leads"]["V2"]["device_lead_off_fraction"] == 1.0
    assert last.critical == [] and last.text is None


def test_quality_gate_wants_leads_i_and_ii():
    x = SynthStream(SynthConfig(seed=5)).read(5000)
    x[1] = 0.0  # lead II flat (and, derived from it, III, aVR, aVL, aVF are not derived: all present here)
    report = analyze_window(_windows(x, 500.0, STANDARD_LEADS)[0])
    assert report.quality["usable"]
    assert quality_gate(report) == (False, "lead II unusable")


def test_reference_request_states_the_findings():
    x = SynthStream(SynthConfig(hr_bpm=65.0, seed=6)).read(5000)
    window = _windows(x, 500.0, STANDARD_LEADS)[0]
    report = analyze_window(window)
    request = reference_request(report)
    assert request.startswith(f"The ECG shows {report.rhythm} with a ventricular rate of "
                              f"{report.measurements.heart_rate_bpm:.0f} bpm.")
    assert f"the QRS duration is {report.measurements.qrs_ms:.0f} ms" in request


def test_reference_comparison_is_high_for_a_matching_ecg_and_low_for_noise():
    x = SynthStream(SynthConfig(hr_bpm=70.0, seed=8)).read(5000)
    live = EcgRecord(x, 500.0, STANDARD_LEADS, name="live")
    window = _windows(x, 500.0, STANDARD_LEADS)[0]
    report = analyze_window(window)
    result = generate_reference(ScriptedInterpreter(), window.record, report, ReferenceSettings(steps=8, age=61))
    comparison = result.comparison
    assert comparison["method"] == "median_beat"
    assert comparison["mean_correlation"] > 0.9 and comparison["rms_mv"] < 0.1
    assert abs(comparison["measurements"]["heart_rate_bpm"]["difference"]) < 3.0
    assert comparison["patient"] == {"heart_rate_bpm": report.measurements.heart_rate_bpm, "age": 61.0, "sex": "M"}
    assert comparison["assumed"] == ["sex"] and comparison["steps"] == 8
    noise = EcgRecord(np.random.default_rng(0).normal(0, 0.3, (12, 5000)).astype(np.float32), 500.0,
                      STANDARD_LEADS, name="noise")
    against_noise, _ = compare_with_reference(live, report, noise)
    assert against_noise["mean_correlation"] < 0.3


def test_lsl_sink_publishes_events_as_json_strings_when_pylsl_is_there(monkeypatch):
    import json
    import sys
    import types

    from uniecg_edge.runtime.live.sinks import SinkSet

    pushed, infos = [], []
    fake = types.ModuleType("pylsl")  # pylsl is not installed here: a stand-in with its API (StreamInfo/Outlet)
    fake.IRREGULAR_RATE = 0.0
    fake.StreamInfo = lambda *args: infos.append(args) or args
    fake.StreamOutlet = lambda info: types.SimpleNamespace(push_sample=pushed.append)
    monkeypatch.setitem(sys.modules, "pylsl", fake)
    sinks = SinkSet.build([("lsl", "ward-3")])
    sinks.emit({"event": "report", "text": "sinus rhythm"})
    assert infos == [("ward-3", "Markers", 1, 0.0, "string", "uniecg-edge-ward-3")]
    assert [json.loads(sample[0]) for sample in pushed] == [{"event": "report", "text": "sinus rhythm"}]
    monkeypatch.setitem(sys.modules, "pylsl", None)  # not installed: skipped, no error
    assert SinkSet.build([("lsl", "x")]).sinks == []
