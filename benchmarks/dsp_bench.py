"""Signal-layer benchmark: R-peak accuracy, HR and intervals against references, and the streaming cost.

    OMP_NUM_THREADS=1 python benchmarks/dsp_bench.py [--data ../shared/data/ecg] [--out dsp_bench.json]

Prints tables and writes one JSON with every figure. Sections:

* R peaks: MIT-BIH 100 (30 min, +-150 ms, beat annotations of 100.atr), CPSC 2019 (+-75 ms, greedy matching,
  ref/R_*.mat), CPSC 2021 (+-150 ms, .atr beats); this package's detector (whole record, and the causal stream
  alone) beside NeuroKit2 ('neurokit' and 'rodrigues2021' on ecg_clean output) and wfdb's XQRS, same records,
  same scoring.
* HR, PR, QRS, QT on the PTB and CinC 2021 12-lead records. They carry no beat annotations, so the HR
  reference is NeuroKit2 ('neurokit') on lead II; PR, QRS and QT are compared with NeuroKit2's 'dwt' and
  'prominence' delineations on lead II (medians over beats). Differences are ours minus NeuroKit2; ours are
  global (all leads), NeuroKit2's are lead II only.
* Cost: 8 channels (I, II, V1-V6) at 500 Hz in 40 ms chunks through lead derivation to 12 leads, the filter
  chain, the streaming R-peak detector, 10-s windows every 2 s and the full window analysis (quality,
  measurements, rhythm, critical rules); CPU seconds per signal second on one core.

NeuroKit2 and XQRS are references only: the package never imports them. Sections whose data or reference
package is absent are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from uniecg_edge.dsp import (  # noqa: E402
    FilterChain,
    SlidingWindows,
    StreamingRPeakDetector,
    analyze_record,
    derive_standard_12,
    detect_r_peaks,
    measure,
)
from uniecg_edge.dsp.scoring import BeatScore, match_peaks  # noqa: E402
from uniecg_edge.record import EcgRecord  # noqa: E402

BEAT_SYMBOLS = list("NLRBAaJSVrFejnE/fQ?")
Detector = Callable[[np.ndarray, float], np.ndarray]


# -- detectors -------------------------------------------------------------------------------------------------
def ours(x: np.ndarray, fs: float) -> np.ndarray:
    return detect_r_peaks(x, fs)


def ours_stream(x: np.ndarray, fs: float) -> np.ndarray:
    return detect_r_peaks(x, fs, refine=False)


def _neurokit(method: str) -> Detector | None:
    try:
        import neurokit2 as nk
    except ImportError:
        return None

    def run(x: np.ndarray, fs: float) -> np.ndarray:
        lead = x if x.ndim == 1 else x[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                clean = nk.ecg_clean(lead, sampling_rate=int(fs), method="neurokit")
                _, info = nk.ecg_peaks(clean, sampling_rate=int(fs), method=method)
            except Exception:  # noqa: BLE001 - a reference that fails on a record scores nothing there
                return np.zeros(0, dtype=np.int64)
        return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)

    return run


def _xqrs() -> Detector | None:
    try:
        from wfdb import processing
    except ImportError:
        return None

    def run(x: np.ndarray, fs: float) -> np.ndarray:
        lead = x if x.ndim == 1 else x[0]
        xq = processing.XQRS(sig=np.nan_to_num(lead), fs=fs)
        xq.detect(verbose=False)
        return np.asarray(xq.qrs_inds, dtype=np.int64)

    return run


def detectors(with_xqrs: bool) -> dict[str, Detector]:
    found: dict[str, Detector | None] = {
        "uniecg-edge": ours, "uniecg-edge stream only": ours_stream,
        "neurokit2 neurokit": _neurokit("neurokit"), "neurokit2 rodrigues2021": _neurokit("rodrigues2021"),
    }
    if with_xqrs:
        found["wfdb XQRS"] = _xqrs()
    return {k: v for k, v in found.items() if v is not None}


# -- data ------------------------------------------------------------------------------------------------------
def load_cpsc2019(root: Path) -> list[tuple[str, np.ndarray, float, np.ndarray]]:
    from scipy.io import loadmat

    out = []
    for f in sorted((root / "cpsc2019" / "data").glob("data_*.mat")):
        ref = loadmat(root / "cpsc2019" / "ref" / f.name.replace("data_", "R_"))["R_peak"].ravel().astype(np.int64)
        out.append((f.stem, loadmat(f)["ecg"].ravel().astype(np.float64), 500.0, ref))
    return out


def load_wfdb_annotated(heads: list[Path]) -> list[tuple[str, np.ndarray, float, np.ndarray]]:
    import wfdb

    from uniecg_edge.wfdb_io import read_record

    out = []
    for head in heads:
        rec = read_record(head)
        ann = wfdb.rdann(str(head.with_suffix("")), "atr")
        ref = np.asarray(ann.sample)[np.isin(ann.symbol, BEAT_SYMBOLS)].astype(np.int64)
        out.append((rec.name, rec.signal.astype(np.float64), rec.fs, ref))
    return out


# -- sections --------------------------------------------------------------------------------------------------
def score_set(name: str, records: list, tolerance_s: float, dets: dict[str, Detector],
              first_lead_only_for_refs: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {"records": len(records), "reference_beats": int(sum(r[3].size for r in records)),
                              "tolerance_ms": tolerance_s * 1000, "detectors": {}}
    for det_name, det in dets.items():
        total = BeatScore(0, 0, 0)
        start = time.process_time()
        per_record = {}
        for rec_name, x, fs, ref in records:
            s = match_peaks(ref, det(x, fs), tolerance_s * fs)
            per_record[rec_name] = s.to_dict()
            total = total + s
        result["detectors"][det_name] = {**total.to_dict(), "cpu_s": round(time.process_time() - start, 2),
                                         "per_record": per_record}
    _print_scores(name, result)
    return result


def _print_scores(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}: {result['records']} records, {result['reference_beats']} beats, "
          f"+-{result['tolerance_ms']:.0f} ms")
    print(f"  {'detector':28s} {'Se':>7s} {'PPV':>7s} {'TP':>6s} {'FN':>5s} {'FP':>5s} {'CPU s':>7s}")
    for det, r in result["detectors"].items():
        print(f"  {det:28s} {r['se']:7.4f} {r['ppv']:7.4f} {r['tp']:6d} {r['fn']:5d} {r['fp']:5d} {r['cpu_s']:7.2f}")


def intervals_section(root: Path) -> dict[str, Any] | None:
    try:
        import neurokit2 as nk
    except ImportError:
        print("\nintervals: neurokit2 not installed, skipped")
        return None
    from uniecg_edge.wfdb_io import read_record

    heads = sorted((root / "ptbdb").glob("*.hea")) + sorted((root / "cinc2021").glob("*.hea"))
    rows = []
    for head in heads:
        rec = read_record(head)
        ours_m = measure(rec.signal, rec.fs, rec.leads, detect_r_peaks(rec.signal, rec.fs))
        lead_ii = rec.lead("II").astype(np.float64)
        ref = _nk_reference(nk, lead_ii, rec.fs)
        rows.append({"record": rec.name, "ours": {
            "hr_bpm": ours_m.heart_rate_bpm, "pr_ms": ours_m.pr_ms, "qrs_ms": ours_m.qrs_ms, "qt_ms": ours_m.qt_ms,
            "beats": len(ours_m.r_peaks)}, "neurokit2": ref})
    summary: dict[str, Any] = {}
    for ref_key in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "prominence_pr_ms", "prominence_qrs_ms", "prominence_qt_ms"):
        key = ref_key.replace("prominence_", "")
        diffs = np.array([r["ours"][key] - r["neurokit2"][ref_key] for r in rows
                          if r["ours"][key] is not None and r["neurokit2"].get(ref_key) is not None])
        summary[ref_key] = {"n": int(diffs.size), "median_diff": _r(np.median(diffs)) if diffs.size else None,
                            "median_abs_diff": _r(np.median(np.abs(diffs))) if diffs.size else None,
                            "p90_abs_diff": _r(np.percentile(np.abs(diffs), 90)) if diffs.size else None}
    hr_ok = [r for r in rows if r["ours"]["hr_bpm"] is not None
             and abs(r["ours"]["hr_bpm"] - r["neurokit2"]["hr_bpm"]) <= 2.0]
    summary["hr_within_2_bpm"] = f"{len(hr_ok)}/{len(rows)}"
    summary["hr_outside_2_bpm"] = {
        r["record"]: {"ours": _r(r["ours"]["hr_bpm"]), "neurokit2": _r(r["neurokit2"]["hr_bpm"]),
                      "ours_beats": r["ours"]["beats"], "neurokit2_beats": r["neurokit2"]["beats"]}
        for r in rows if r not in hr_ok}
    print(f"\nPTB + CinC 2021: {len(rows)} records; reference NeuroKit2 on lead II (HR: 'neurokit' peaks; "
          "PR/QRS/QT: 'dwt' and 'prominence' delineations)")
    print(f"  HR within 2 bpm of the reference: {summary['hr_within_2_bpm']}; outside: {summary['hr_outside_2_bpm']}")
    for key in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "prominence_pr_ms", "prominence_qrs_ms", "prominence_qt_ms"):
        s = summary[key]
        label = key if key.startswith("prominence") or key == "hr_bpm" else "dwt_" + key
        print(f"  {label:18s} n={s['n']:2d}  median(ours - nk)={s['median_diff']}  median|diff|={s['median_abs_diff']}"
              f"  p90|diff|={s['p90_abs_diff']}")
    return {"rows": rows, "summary": summary}


def _nk_reference(nk: Any, x: np.ndarray, fs: float) -> dict[str, Any]:
    """HR from NeuroKit2 'neurokit' peaks; PR, QRS, QT (medians over beats) from its 'dwt' and 'prominence'
    delineations, keyed ``pr_ms`` (dwt) and ``prominence_pr_ms`` and so on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = nk.ecg_clean(x, sampling_rate=int(fs))
        _, info = nk.ecg_peaks(clean, sampling_rate=int(fs))
        peaks = np.asarray(info["ECG_R_Peaks"])
        out: dict[str, Any] = {"hr_bpm": 60.0 * fs / float(np.mean(np.diff(peaks))), "beats": int(peaks.size)}
        for method, prefix in (("dwt", ""), ("prominence", "prominence_")):
            try:
                _, waves = nk.ecg_delineate(clean, peaks, sampling_rate=int(fs), method=method)
            except Exception:  # noqa: BLE001 - a reference that fails leaves its values unknown
                waves = {}
            for key, a, b in (("pr_ms", "ECG_P_Onsets", "ECG_R_Onsets"), ("qrs_ms", "ECG_R_Onsets", "ECG_R_Offsets"),
                              ("qt_ms", "ECG_R_Onsets", "ECG_T_Offsets")):
                out[prefix + key] = _median_interval(waves, a, b, fs)
    return out


def _median_interval(waves: dict, start: str, stop: str, fs: float) -> float | None:
    if start not in waves or stop not in waves:
        return None
    d = np.asarray(waves[stop], dtype=float) - np.asarray(waves[start], dtype=float)
    d = d[np.isfinite(d)]
    return float(np.median(d) * 1000.0 / fs) if d.size else None


def cost_section(seconds: float = 120.0, chunk_ms: float = 40.0, hop_s: float = 2.0) -> dict[str, Any]:
    """CPU time of the streaming path per second of 12-lead signal at 500 Hz (one core)."""
    from uniecg_edge.synth import SynthConfig, synthesize

    fs = 500.0
    rec = synthesize(SynthConfig(hr_bpm=75, seed=0), seconds).record
    eight_names = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    eight = np.stack([rec.lead(n) for n in eight_names])
    chunk = int(round(chunk_ms * fs / 1000.0))
    stages = {"derive": 0.0, "filters": 0.0, "detector": 0.0, "windows": 0.0, "window_analysis": 0.0}
    filt = FilterChain(fs, n_channels=12)
    det = StreamingRPeakDetector(fs, 12)
    windows = SlidingWindows(fs, 12, window_s=10.0, hop_s=hop_s)
    names = tuple(rec.leads)
    beats = 0
    analysed = 0
    for start in range(0, eight.shape[1], chunk):
        part = eight[:, start: start + chunk]
        t0 = time.process_time()
        twelve, _ = derive_standard_12(part, eight_names)
        t1 = time.process_time()
        filtered = filt.process(twelve)
        t2 = time.process_time()
        beats += det.process(twelve).size
        t3 = time.process_time()
        ready = windows.push(filtered.astype(np.float32))
        t4 = time.process_time()
        for w in ready:
            analyze_record(EcgRecord(w.data, fs, names, name=f"window@{w.start_index}"))
            analysed += 1
        t5 = time.process_time()
        for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            stages[key] += dt
    total = sum(stages.values())
    result = {
        "signal_s": seconds, "fs": fs, "leads": 12, "chunk_ms": chunk_ms, "window_s": 10.0, "hop_s": hop_s,
        "windows_analysed": analysed, "beats_streamed": beats,
        "cpu_s": {k: round(v, 3) for k, v in stages.items()}, "cpu_s_total": round(total, 3),
        "percent_of_one_core": round(100.0 * total / seconds, 2),
        "percent_by_stage": {k: round(100.0 * v / seconds, 2) for k, v in stages.items()},
    }
    print(f"\nstreaming cost, 12 leads at 500 Hz, {chunk_ms:.0f} ms chunks, 10-s windows every {hop_s:g} s "
          f"({seconds:.0f} s of signal): {result['percent_of_one_core']:.2f} % of one core")
    print("  by stage (% of one core): " + ", ".join(f"{k} {v:.2f}" for k, v in result["percent_by_stage"].items()))
    return result


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(os.environ.get("UNIECG_SHARED_ECG", REPO.parent / "shared" / "data" / "ecg"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, default=Path("dsp_bench.json"))
    parser.add_argument("--skip-mitdb-references", action="store_true",
                        help="Score only this package on MIT-BIH 100 (NeuroKit2 and XQRS take a while there).")
    args = parser.parse_args()
    root: Path = args.data
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "cpus": os.cpu_count(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if not root.is_dir():
        print(f"no ECG records at {root}: only the cost section runs")
    else:
        if (root / "mitdb" / "100.hea").is_file():
            dets = {"uniecg-edge": ours, "uniecg-edge stream only": ours_stream} if args.skip_mitdb_references \
                else detectors(with_xqrs=False)
            report["mitdb_100"] = score_set("MIT-BIH 100", load_wfdb_annotated([root / "mitdb" / "100.hea"]),
                                            0.150, dets)
        if (root / "cpsc2019" / "data").is_dir():
            report["cpsc2019"] = score_set("CPSC 2019", load_cpsc2019(root), 0.075, detectors(with_xqrs=True))
        heads = sorted((root / "cpsc2021").glob("*.hea"))
        if heads:
            report["cpsc2021"] = score_set("CPSC 2021", load_wfdb_annotated(heads), 0.150, detectors(with_xqrs=False))
        report["intervals"] = intervals_section(root)
    report["cost"] = cost_section()
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
