"""``uniecg-edge record``, ``simulate`` and ``devices`` on real pseudo-terminals and real WFDB files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.devices import open_device
from uniecg_edge.wfdb_io import read_record

from .conftest import collect


def test_record_writes_wfdb_with_derived_limb_leads(simulator, tmp_path: Path):
    sim = simulator("openbci", speed=20)
    out = tmp_path / "rec" / "cyton"
    result = CliRunner().invoke(main, ["record", "--device", f"openbci://{sim.path}?gain=12", "--seconds", "2",
                                       "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["samples"] == 500 and summary["fs"] == 250.0 and summary["missing_samples"] == 0
    record = read_record(out.with_suffix(".hea"))
    assert record.fs == 250.0 and record.n_samples == 500
    assert record.leads == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6", "III", "aVR", "aVL", "aVF")
    truth = sim.expected_mv(sim.sessions[0][0], 500)
    np.testing.assert_allclose(record.signal[:8].T, truth, atol=0.0005 + 1e-6)  # fmt 16 at 1 µV per count
    lead = {name: record.signal[i] for i, name in enumerate(record.leads)}
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=0.0011)
    np.testing.assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=0.0011)
    sidecar = json.loads((out.parent / "cyton.acquisition.json").read_text())
    assert sidecar["device"]["kind"] == "openbci" and sidecar["device"]["gain"] == 12


def test_record_marks_lost_samples_as_wfdb_missing_values(simulator, tmp_path: Path):
    sim = simulator("olimex", speed=10, drop_every=25)
    out = tmp_path / "oli"
    result = CliRunner().invoke(main, ["record", "--device", f"olimex://{sim.path}", "--seconds", "1.6",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "200 at 125 Hz" not in result.output and "missing samples" in result.output
    record = read_record(out.with_suffix(".hea"))
    assert record.n_samples == 200 and record.leads == ("I",)
    first = sim.sessions[0][0]
    lost = sorted(p - first for p in sim.dropped_positions if first <= p < first + 200)
    assert lost and np.flatnonzero(np.isnan(record.signal[0])).tolist() == lost


def test_record_counts_signal_time_not_wall_time(shared_ecg: Path, tmp_path: Path):
    out = tmp_path / "fast"
    t0 = time.monotonic()
    result = CliRunner().invoke(main, ["record", "--device", f"playback://{shared_ecg}/mitdb/100.hea?speed=500",
                                       "--seconds", "30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - t0 < 5
    record = read_record(out.with_suffix(".hea"))
    assert record.fs == 360.0 and record.n_samples == 30 * 360 and record.leads == ("MLII", "V5")


def test_record_usage_errors_are_one_line_with_exit_status_2(tmp_path: Path):
    runner = CliRunner()
    bad_param = runner.invoke(main, ["record", "--device", "openbci:///dev/ttyUSB9?gian=24", "--seconds", "1",
                                     "--out", str(tmp_path / "x")])
    assert bad_param.exit_code == 2
    assert "unknown parameter 'gian'" in bad_param.output and "valid: baud, gain, leads" in bad_param.output
    missing = runner.invoke(main, ["record", "--device", "olimex:///dev/ttyNOPE0", "--seconds", "1",
                                   "--out", str(tmp_path / "y")])
    assert missing.exit_code == 2
    assert missing.output.strip().count("\n") == 0 and "/dev/ttyNOPE0" in missing.output
    unknown = runner.invoke(main, ["record", "--device", "biosemi:///dev/x", "--seconds", "1", "--out", "z"])
    assert unknown.exit_code == 2 and "known: ad8232, ads1292r" in unknown.output


def test_simulate_prints_the_port_first_and_streams_until_its_time_is_up(tmp_path: Path):
    link = tmp_path / "ttySIM"
    command = [sys.executable, "-c", "from uniecg_edge.cli import main; main()", "simulate", "hackeeg",
               "--speed", "8", "--seconds", "3", "--link", str(link)]
    env = {**os.environ, "PYTHONUNBUFFERED": "0"}  # the command must flush the path itself
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first_line = proc.stdout.readline().strip() if proc.stdout else ""
        assert first_line == str(link)
        with open_device(f"hackeeg://{first_line}") as dev:
            dev.start()
            samples, flags, _ = collect(dev, 1000)
        assert not np.isnan(samples).any() and np.ptp(samples[:, 1]) > 0.3
        assert flags is not None and not flags.any()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not link.exists()


def test_simulate_streams_a_wfdb_record_mapped_by_lead_name(shared_ecg: Path, tmp_path: Path):
    from uniecg_edge.devices.simulators import SimulatorConfig, create_simulator

    record_path = shared_ecg / "ptbdb" / "s0010_re.hea"
    wiring = ("V1", "II", "I", "V2", "V3", "V4", "V5", "V6")  # electrodes as placed on this board
    sim = create_simulator("openbci", SimulatorConfig(speed=20, record=str(record_path), leads=wiring))
    sim.start()
    try:
        with open_device(f"openbci://{sim.path}?gain=24&leads={','.join(wiring)}") as dev:
            dev.start()
            samples, _, _ = collect(dev, 500)
    finally:
        sim.stop()
    record = read_record(record_path)
    from uniecg_edge.preprocess import resample_to

    truth = resample_to(record.signal, record.fs, 250.0)
    first = sim.sessions[0][0]
    for column, lead in enumerate(("V1", "II", "I")):
        expected = truth[record.leads.index(lead), first : first + 500]
        assert np.max(np.abs(samples[:, column] - expected)) < 0.001  # 22 nV counts: exact to quantisation


def test_simulate_rejects_unknown_kinds():
    result = CliRunner().invoke(main, ["simulate", "biosemi", "--seconds", "1"])
    assert result.exit_code == 2
    assert "known: ad8232, ads1292r, hackeeg, olimex, openbci, openbci-daisy" in result.output


def test_devices_lists_kinds_parameters_channels_and_rates():
    text = CliRunner().invoke(main, ["devices"])
    assert text.exit_code == 0
    for kind in ("openbci", "openbci-daisy", "olimex", "ads1292r", "hackeeg", "ad8232", "playback", "synthetic"):
        assert f"{kind}://" in text.output
    as_json = CliRunner().invoke(main, ["devices", "--json"])
    specs = {spec["kind"]: spec for spec in json.loads(as_json.output)}
    assert specs["openbci"]["fs"] == 250.0 and specs["openbci"]["channels"] == 8
    assert specs["openbci-daisy"]["fs"] == 125.0 and specs["openbci-daisy"]["channels"] == 16
    gain = next(p for p in specs["openbci"]["params"] if p["name"] == "gain")
    assert gain["default"] == 24 and gain["choices"] == [1, 2, 4, 6, 8, 12, 24]
    assert specs["openbci"]["default_leads"] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert {p["name"] for p in specs["ad8232"]["params"]} >= {"baud", "fs", "timeout", "reconnect"}
    assert specs["playback"]["fs"] is None


@pytest.mark.parametrize("url", ["openbci:///dev/x?gain=5", "openbci:///dev/x?leads=I,II,I",
                                 "openbci:///dev/x?gain", "hackeeg:///dev/x?chip=ads1298&fs=250",
                                 "openbci:///dev/x?leads=" + ",".join(["I"] + [f"C{i}" for i in range(9)])])
def test_bad_url_values_are_usage_errors(url, tmp_path: Path):
    result = CliRunner().invoke(main, ["record", "--device", url, "--seconds", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
