"""Measurement-grounded prompts: the DSP's evidence line, its place in the prompt, and who writes it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.dsp import analyze_record
from uniecg_edge.grounding import grounded_question, measurement_line
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.record import EcgRecord
from uniecg_edge.report import Report
from uniecg_edge.synth import SynthConfig, synthesize
from uniecg_edge.wfdb_io import read_record

LINE = re.compile(r"^Measured: ventricular rate (\d+) bpm \((under 60|60-100|over 100)\), mean RR (\d+) ms, "
                  r"RR irregularity (\d+) %, "
                  r"P waves (present|absent|not determined)\.\n$")


def _synthetic(hr: float, rhythm: str = "sinus") -> EcgRecord:
    return synthesize(SynthConfig(hr_bpm=hr, rhythm=rhythm, seed=3), 10.0).record


@pytest.mark.parametrize("hr", [52.0, 75.0, 128.0])
def test_the_line_states_what_the_dsp_measured(hr: float) -> None:
    report = analyze_record(_synthetic(hr))
    match = LINE.match(measurement_line(report))
    assert match is not None, measurement_line(report)
    assert int(match.group(1)) == round(report.measurements.heart_rate_bpm)
    assert abs(int(match.group(1)) - hr) <= 3
    assert match.group(2) == {52.0: "under 60", 75.0: "60-100", 128.0: "over 100"}[hr]
    assert int(match.group(3)) == round(report.measurements.rr_ms)
    assert int(match.group(4)) < 8  # a sinus rhythm is regular


def test_fibrillation_reads_irregular() -> None:
    report = analyze_record(_synthetic(95.0, rhythm="afib"))
    match = LINE.match(measurement_line(report))
    assert match is not None and int(match.group(4)) >= 8


def test_a_real_record_gets_a_line() -> None:
    report = analyze_record(read_record(EXAMPLE_RECORD))
    assert LINE.match(measurement_line(report))


def test_no_rate_means_no_line_and_the_plain_question() -> None:
    flat = EcgRecord(np.zeros((12, 5000), np.float32), fs=500.0, leads=STANDARD_LEADS, name="flat")
    empty = analyze_record(flat)
    assert empty.measurements.heart_rate_bpm is None
    assert measurement_line(empty) == ""
    assert grounded_question("Interpret.", None, empty) == "Interpret."
    assert grounded_question("Interpret.", "Is there AF?", None) == "Is there AF?"
    full = analyze_record(_synthetic(70.0))
    assert grounded_question("Interpret.", None, full) == measurement_line(full) + "Interpret."


def test_unknown_p_waves_are_said_so() -> None:
    report = Report(record="x", fs=500.0, leads=list(STANDARD_LEADS), duration_s=10.0)
    report.measurements.heart_rate_bpm, report.measurements.rr_ms = 60.0, 1000.0
    report.measurements.r_peaks = [0, 500, 1000, 1500, 2000]
    assert measurement_line(report) == ("Measured: ventricular rate 60 bpm (60-100), mean RR 1000 ms, "
                                        "RR irregularity 0 %, P waves not determined.\n")


@pytest.mark.parametrize("bpm, band", [(59.4, "under 60"), (59.5, "60-100"), (100.0, "60-100"), (100.4, "60-100"),
                                       (100.6, "over 100"), (104.0, "over 100")])
def test_the_band_is_that_of_the_rate_the_line_states(bpm: float, band: str) -> None:
    from uniecg_edge.grounding import rate_band, stated_rate

    report = Report(record="x", fs=500.0, leads=list(STANDARD_LEADS), duration_s=10.0)
    report.measurements.heart_rate_bpm, report.measurements.rr_ms = bpm, 60000.0 / bpm
    assert measurement_line(report).startswith(f"Measured: ventricular rate {stated_rate(bpm)} bpm ({band}), ")
    assert rate_band(stated_rate(bpm)) == band


def _spy_prompts(target: Any) -> list[str]:
    """Record the prompts ``target.respond`` receives (the real method still runs)."""
    seen: list[str] = []
    real = target.respond

    def respond(prompt: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(prompt)
        return real(prompt, *args, **kwargs)

    target.respond = respond
    return seen


def test_a_grounded_model_reads_the_line_and_an_ungrounded_one_does_not(tiny_model_dir: Path) -> None:
    from uniecg_edge.model.pipeline import TorchPipeline

    record = _synthetic(80.0)
    pipeline = TorchPipeline.from_pretrained(tiny_model_dir)
    seen = _spy_prompts(pipeline)
    plain = pipeline.interpret(record, max_new_tokens=2)
    pipeline.model.config = dataclasses.replace(pipeline.model.config, grounded=True)
    grounded = pipeline.interpret(record, max_new_tokens=2)
    assert "Measured:" not in seen[0] and plain.provenance["grounded"] is False
    assert measurement_line(analyze_record(record)) in seen[1] and grounded.provenance["grounded"] is True
    assert grounded.measurements.heart_rate_bpm is not None  # the DSP ran for the line and the evidence check


def test_the_runtime_grounds_as_the_bundle_config_says(fp32_bundle: Path) -> None:
    from uniecg_edge.runtime import EdgeRuntime

    record = _synthetic(64.0)
    runtime = EdgeRuntime.from_bundle(fp32_bundle, backend="onnxruntime")
    assert runtime.config["grounded"] is False
    seen = _spy_prompts(runtime)
    runtime.interpret(record, max_new_tokens=2)
    runtime.config["grounded"] = True
    base = analyze_record(record)
    report = runtime.interpret(record, base_report=base, max_new_tokens=2)
    assert "Measured:" not in seen[0]
    assert measurement_line(base) in seen[1] and report.provenance["grounded"] is True
