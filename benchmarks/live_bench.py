"""Live-pipeline benchmark: lost samples, window-to-report latency, memory over a long run, reference generation.

    OMP_NUM_THREADS=1 python benchmarks/live_bench.py [--bundle DIR] [--minutes 10] [--speed 4] [--out live_bench.json]

Without ``--bundle`` the default model is exported once to an int8 bundle (cached under ``--cache``). Sections:

* Streams (the targets: no dropped sample while the model runs; RSS grows < 5 % between signal minute 2 and the
  end): ``--minutes`` of signal at ``--speed`` x real time through the whole pipeline (acquisition thread, WFDB
  recording, 10-s windows every 2 s, DSP, quality gate, the model on the newest window) from
  ``synthetic://`` (12 leads x 500 Hz) and from the OpenBCI Cyton + Daisy simulator on a real pseudo-terminal
  (16 channels x 125 Hz). The recording is then compared sample by sample with the source's truth.
* Latency: window end (the host time its last sample was read) -> report, p50 and p95, at real time
  (``--latency-seconds``; the 4x streams report theirs too).
* Reference generation: ``generate`` with ``--steps`` (default 8) scheduler steps, p50 and p95, and the whole
  ``--reference`` step (generation + comparison) per window.

Prints a Markdown table and writes one JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from uniecg_edge.devices import device_from_url  # noqa: E402
from uniecg_edge.devices.simulators import SimulatorConfig, create_simulator  # noqa: E402
from uniecg_edge.runtime.live import LiveConfig, LivePipeline, ReferenceSettings, SinkSet  # noqa: E402
from uniecg_edge.runtime.live.reference import generate_reference  # noqa: E402

MINUTE_FOR_BASELINE = 2.0  # RSS growth is measured from this minute of signal to the end
RTOL = 1e-6
COMPARE_PIECE_S = 30.0  # truth compared piece by piece (the simulator's generator keeps a bounded cache)


# -- the model -------------------------------------------------------------------------------------------------
def default_int8_bundle(cache: Path) -> Path:
    bundle = cache / "default-int8"
    if (bundle / "manifest.json").is_file():
        return bundle
    from uniecg_edge.export import ExportOptions, export_bundle
    from uniecg_edge.model.default import default_model_dir

    cache.mkdir(parents=True, exist_ok=True)
    print(f"exporting the default model to an int8 bundle at {bundle} (once)")
    export_bundle(bundle, default_model_dir(), ExportOptions(precision="int8"))
    return bundle


def load_runtime(bundle: Path, backend: str) -> Any:
    from uniecg_edge.runtime import EdgeRuntime

    return EdgeRuntime.from_bundle(bundle, backend=backend)


# -- memory ----------------------------------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """RSS of this process every ``period`` s, with the signal time the pipeline had reached."""

    def __init__(self, pipeline: LivePipeline, fs: float, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process()
        self.pipeline, self.fs, self.period = pipeline, fs, period
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period):
            acq = self.pipeline.acquisition
            if acq is not None:
                self.samples.append((acq.end_index / self.fs, self.process.memory_info().rss))

    def growth(self, from_s: float) -> dict[str, Any]:
        later = [(t, rss) for t, rss in self.samples if t >= from_s]
        if len(later) < 2:
            return {"from_s": from_s, "growth_pct": None, "note": "run shorter than the baseline minute"}
        base, end = later[0][1], later[-1][1]
        peak = max(rss for _, rss in later)
        return {"from_s": round(later[0][0], 1), "to_s": round(later[-1][0], 1), "rss_mb_at_from": base / 2**20,
                "rss_mb_at_end": end / 2**20, "rss_mb_peak": peak / 2**20,
                "growth_pct": round(100.0 * (end - base) / base, 2)}


# -- truth -----------------------------------------------------------------------------------------------------
def synthetic_truth(url: str) -> Any:
    from uniecg_edge.synth import SynthStream

    device = device_from_url(url)
    stream = SynthStream(device.config)
    rows = device._rows  # noqa: SLF001 - the driver's lead selection

    def piece(start: int, n: int) -> np.ndarray:
        assert stream.sample_index == start
        return stream.read(n)[rows].T

    return piece


def simulator_truth(kind: str, config: SimulatorConfig, first: int) -> Any:
    twin = create_simulator(kind, config)  # a fresh, unstarted twin: the same deterministic source from 0
    twin.port.close()

    def piece(start: int, n: int) -> np.ndarray:
        return twin.expected_mv(first + start, n)

    return piece


def compare_recording(record_path: Path, fs: float, truth: Any, atol: float) -> dict[str, Any]:
    import wfdb

    header = wfdb.rdheader(str(record_path))
    n = int(header.sig_len)
    step = int(COMPARE_PIECE_S * fs)
    worst, bad_rows, missing_rows = 0.0, 0, 0
    for start in range(0, n, step):
        count = min(step, n - start)
        got = wfdb.rdrecord(str(record_path), sampfrom=start, sampto=start + count).p_signal
        want = truth(start, count)
        missing = np.isnan(got).all(axis=1)
        missing_rows += int(missing.sum())
        diff = np.abs(got - want)
        worst = max(worst, float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0)
        allowed = atol + RTOL * np.abs(np.nan_to_num(want))  # float32 truth: relative rounding on top
        bad_rows += int((np.nan_to_num(diff, nan=np.inf) > allowed).any(axis=1).sum())
    return {"rows": n, "rows_differing": bad_rows, "missing_rows": missing_rows, "max_abs_error_mv": worst,
            "tolerance": f"{atol:g} mV + {RTOL:g} x |value|"}


# -- runs ------------------------------------------------------------------------------------------------------
def run_stream(name: str, url: str, runtime: Any, seconds: float, work: Path, truth_factory: Any, atol: float,
               reference: ReferenceSettings | None = None) -> dict[str, Any]:
    """One run of ``seconds`` of signal; ``truth_factory()`` (called after the run) gives the source's truth."""
    device = device_from_url(url)
    fs = device.info.fs
    jsonl, record = work / f"{name}.jsonl", work / name
    config = LiveConfig(duration_s=seconds, reference=reference)
    pipeline = LivePipeline(device, runtime, config, SinkSet.build([("jsonl", str(jsonl))]), record_path=record,
                            name=name)
    sampler = RssSampler(pipeline, fs)
    sampler.start()
    t0 = time.monotonic()
    summary = pipeline.run()
    wall = time.monotonic() - t0
    sampler.done.set()
    sampler.join()
    checked = compare_recording(record, fs, truth_factory(), atol)
    samples = summary["samples"]
    result = {
        "name": name, "url": url, "fs": fs, "channels": len(device.info.leads), "signal_s": summary["signal_s"],
        "wall_s": round(wall, 1), "speed_achieved": round(summary["signal_s"] / wall, 2),
        "samples": samples, "lost_samples": samples["dropped"] + samples["device_missing"] + checked["missing_rows"],
        "recording_vs_truth": checked, "windows": summary["windows"], "interpreted": summary["interpreted"],
        "skipped_stale": summary["skipped_stale"], "rejected": summary["rejected"],
        "model_errors": summary["model_errors"], "queue_peak_s": summary["queue_peak_s"],
        "latency_s": summary["latency_s"], "memory": sampler.growth(MINUTE_FOR_BASELINE * 60.0),
    }
    print(f"  {name}: {result['signal_s']:.0f} s of signal in {wall:.0f} s; lost {result['lost_samples']}; "
          f"recording differs in {checked['rows_differing']} of {checked['rows']} rows; "
          f"latency p50/p95 {result['latency_s']['window_to_report']['p50']}/"
          f"{result['latency_s']['window_to_report']['p95']} s; RSS growth {result['memory'].get('growth_pct')} %")
    return result


def bench_generation(runtime: Any, steps: int, repeats: int) -> dict[str, Any]:
    from uniecg_edge.dsp import analyze_record
    from uniecg_edge.leads import STANDARD_LEADS
    from uniecg_edge.record import EcgRecord
    from uniecg_edge.synth import SynthConfig, SynthStream

    live = EcgRecord(SynthStream(SynthConfig(seed=11)).read(5000), 500.0, STANDARD_LEADS, name="live")
    report = analyze_record(live)
    settings = ReferenceSettings(steps=steps)
    generate_s, reference_s, used_steps = [], [], set()
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        generated = runtime.generate("The ECG shows sinus rhythm with a ventricular rate of 72 bpm.", hr=72.0,
                                     age=50.0, sex="M", steps=steps, seed=i)
        t1 = time.perf_counter()
        generate_reference(runtime, live, report, settings)
        t2 = time.perf_counter()
        used_steps.add(generated.steps)
        if i >= 2:  # two warm-up calls
            generate_s.append(t1 - t0)
            reference_s.append(t2 - t1)

    def pct(values: list[float]) -> dict[str, float]:
        return {"p50": round(float(np.percentile(values, 50)), 4), "p95": round(float(np.percentile(values, 95)), 4)}

    return {"steps": sorted(used_steps), "repeats": repeats, "generate_s": pct(generate_s),
            "reference_s": pct(reference_s)}


def machine() -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "processor": platform.processor()}
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def markdown(report: dict[str, Any]) -> str:
    lines = ["| stream | signal | wall | lost samples | recording = truth | windows (interpreted / skipped) | "
             "latency p50 / p95 | RSS growth from min 2 |", "|---|---|---|---|---|---|---|---|"]
    for r in report["streams"]:
        lat = r["latency_s"]["window_to_report"]
        check = r["recording_vs_truth"]
        lines.append(f"| {r['name']} ({r['channels']} ch x {r['fs']:g} Hz) | {r['signal_s']:.0f} s | "
                     f"{r['wall_s']:.0f} s | {r['lost_samples']} | {check['rows'] - check['rows_differing']}/"
                     f"{check['rows']} rows | {r['windows']} ({r['interpreted']} / {r['skipped_stale']}) | "
                     f"{lat['p50']} / {lat['p95']} s | {r['memory'].get('growth_pct')} % |")
    gen = report.get("generation")
    if gen:
        lines.append("")
        lines.append(f"generation, {gen['steps']} steps: p50 {gen['generate_s']['p50']} s, p95 "
                     f"{gen['generate_s']['p95']} s; reference (generation + comparison): p50 "
                     f"{gen['reference_s']['p50']} s, p95 {gen['reference_s']['p95']} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=None, help="edge bundle (default: the default model, int8)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "uniecg-live-bench")
    parser.add_argument("--minutes", type=float, default=10.0, help="signal minutes of each stream")
    parser.add_argument("--speed", type=float, default=4.0, help="x real time")
    parser.add_argument("--latency-seconds", type=float, default=120.0, help="real-time run for latency (0: skip)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--streams", default="synthetic,daisy", help="comma-separated: synthetic, daisy")
    parser.add_argument("--out", type=Path, default=Path("live_bench.json"))
    args = parser.parse_args()

    bundle = args.bundle or default_int8_bundle(args.cache)
    runtime = load_runtime(bundle, args.backend)
    seconds = args.minutes * 60.0
    report: dict[str, Any] = {"machine": machine(), "bundle": str(bundle), "speed": args.speed,
                              "minutes": args.minutes, "streams": []}
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        work = Path(tmp)
        wanted = [s.strip() for s in args.streams.split(",") if s.strip()]
        print(f"streams: {args.minutes:g} min of signal at {args.speed:g}x, model: {bundle}")
        if "synthetic" in wanted:
            url = f"synthetic://?speed={args.speed:g}&seed=3"
            report["streams"].append(run_stream("synthetic-12x500", url, runtime, seconds, work,
                                                lambda: synthetic_truth(url), atol=5e-6))
        if "daisy" in wanted:
            config = SimulatorConfig(speed=args.speed, seed=3)
            sim = create_simulator("openbci-daisy", config)
            sim.start()
            try:
                result = run_stream("daisy-16x125", f"openbci-daisy://{sim.path}", runtime, seconds, work,
                                    lambda: simulator_truth("openbci-daisy", config, sim.sessions[0][0]), atol=1e-9)
            finally:
                sim.stop()
            report["streams"].append(result)
        if args.latency_seconds > 0:
            url = "synthetic://?speed=1&seed=4"
            result = run_stream("latency-realtime", url, runtime, args.latency_seconds, work,
                                lambda: synthetic_truth(url), atol=5e-6)
            report["latency_realtime"] = result["latency_s"]
            report["streams"].append(result)
    report["generation"] = bench_generation(runtime, args.steps, args.repeats)
    table = markdown(report)
    print()
    print(table)
    report["markdown"] = table
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
