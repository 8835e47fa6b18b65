"""The demo's closing summary: figures from the reports it printed, the run's counters and the model's provenance.

``build_summary`` gives the dict written as ``summary.json`` (and printed by ``demo --json``); ``format_summary``
the short text printed at the end. Heart rate and latency figures are over the interpreted windows (``report``
events) exactly as they went into ``reports.jsonl``; percentiles are numpy's (linear interpolation).
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median": None, "p95": None, "min": None, "max": None}
    x = np.asarray(values, dtype=np.float64)
    return {"count": int(x.size), "median": round(float(np.median(x)), 4),
            "p95": round(float(np.percentile(x, 95)), 4), "min": round(float(x.min()), 4),
            "max": round(float(x.max()), 4)}


def build_summary(*, config: dict[str, Any], record: dict[str, Any], events: list[dict[str, Any]],
                  run: dict[str, Any], bundle: dict[str, Any], provenance: dict[str, Any],
                  files: dict[str, Any]) -> dict[str, Any]:
    """The demo's summary.

    ``events``: what ``ConsoleSink`` kept; ``run``: ``LivePipeline.run()``'s summary; ``bundle``:
    ``BundleChoice.to_dict()``; ``provenance``: the runtime's (``EdgeRuntime.provenance()``); ``files``: what was
    written.
    """
    reports = [e for e in events if e["event"] == "report"]
    rates = [float(e["heart_rate_bpm"]) for e in reports if e["heart_rate_bpm"] is not None]
    latencies = [float(e["window_to_report_s"]) for e in reports if e["window_to_report_s"] is not None]
    rhythms = collections.Counter(e["rhythm"] for e in reports if e["rhythm"])
    kinds = collections.Counter(e["event"] for e in events)
    return {
        "package_version": __version__,
        "stopped_by": run.get("stopped_by"),
        "signal_s": run.get("signal_s"),
        "record": record,
        "device": run.get("device"),
        "samples": run.get("samples"),
        "windows": run.get("windows", 0),
        "interpreted": kinds["report"],
        "rejected": kinds["rejected"],
        "model_errors": kinds["model_error"],
        "critical_alerts": kinds["critical"],
        "skipped_stale": run.get("skipped_stale", 0),
        "with_reference": sum(1 for e in reports if e["has_reference"]),
        "heart_rate_bpm": {k: v for k, v in _stats(rates).items() if k != "p95"},
        "rhythms": dict(rhythms.most_common()),
        "latency_s": {"window_to_report": {k: _stats(latencies)[k] for k in ("count", "median", "p95", "max")}},
        "runtime": {
            "backend": provenance.get("backend"),
            "execution_provider": provenance.get("execution_provider"),
            "precision": provenance.get("precision"),
            "bundle": bundle,
            "bundle_sha256": provenance.get("bundle_sha256"),
        },
        "model": {
            "name": provenance.get("model"),
            "sha256": provenance.get("model_sha256"),
            "trained": provenance.get("trained"),
        },
        "files": files,
        "config": config,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def format_summary(summary: dict[str, Any]) -> str:
    """The closing text of the demo (a few aligned lines)."""
    hr = summary["heart_rate_bpm"]
    lat = summary["latency_s"]["window_to_report"]
    runtime, model, files, record = summary["runtime"], summary["model"], summary["files"], summary["record"]
    rhythms = ", ".join(f"{name} ({n})" for name, n in summary["rhythms"].items()) or "none named"
    trained = "trained" if model["trained"] else "UNTRAINED: random weights, its text is meaningless"
    bundle = runtime["bundle"]
    how = {"cache": "cached", "exported": "exported now", "given": "--bundle"}.get(bundle["source"], bundle["source"])
    out = Path(files["summary"]).parent
    written = [Path(files["reports"]).name, f"{Path(files['png_dir']).name}/ ({len(files['png'])} PNG)",
               f"{Path(files['recording']).name} (raw WFDB)", Path(files["summary"]).name]
    source = record["name"] + (f" ({record['credit']})" if record.get("credit") else "")
    rows = [
        ("signal", f"{_fmt(summary['signal_s'], '.1f')} s of {source}, stopped by {summary['stopped_by']}"),
        ("windows", f"{summary['windows']}: {summary['interpreted']} interpreted, {summary['rejected']} rejected, "
                    f"{summary['skipped_stale']} skipped while the model was busy, "
                    f"{summary['model_errors']} model errors"),
        ("heart rate", f"median {_fmt(hr['median'], '.0f')} bpm (range {_fmt(hr['min'], '.0f')}-"
                       f"{_fmt(hr['max'], '.0f')}) over {hr['count']} reports"),
        ("rhythm", rhythms),
        ("latency", f"window → report median {_fmt(lat['median'], '.2f')} s, p95 {_fmt(lat['p95'], '.2f')} s"),
        ("runtime", f"{runtime['backend']} ({runtime['execution_provider']}), {runtime['precision']} bundle "
                    f"{bundle['path']} ({how})"),
        ("model", f"{model['name']} ({trained}), sha256 {str(model['sha256'])[:12]}…"),
        ("files", f"{out}{os.sep}: " + ", ".join(written)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(["demo summary"] + [f"  {name.ljust(width)}  {text}" for name, text in rows])
