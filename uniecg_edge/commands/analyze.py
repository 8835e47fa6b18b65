"""``uniecg-edge analyze RECORD...``: the signal path only (quality, R peaks, measurements, rhythm, critical).

No model and no torch: numpy, scipy and wfdb (to read the record) only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._records import report_each


@click.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line (DESIGN.md §8 keys).")
@click.option("--mains", type=click.Choice(["50", "60"]), default=None,
              help="Mains frequency for the notch (default: the one found in the record, else 50).")
def analyze(records: tuple[Path, ...], as_json: bool, mains: str | None) -> None:
    """Analyse WFDB RECORDS (.hea with .dat or .mat) of any length and lead set: per-lead quality, R peaks
    (sample indices at the record's rate), HR, RR, PR, QRS, QT, QTc, axis, rhythm and critical findings.

    Unknown values are null. Several records: a failing one prints its error and the rest go on (exit 2).
    """
    from ..dsp import AnalysisConfig, analyze_record
    from ..wfdb_io import read_record

    config = AnalysisConfig(mains_hz=float(mains) if mains else None)
    report_each(records, lambda path: analyze_record(read_record(path), config),
                lambda report: report.to_json() if as_json else summary(report.to_dict()))


def _fmt(value: Any, unit: str) -> str:
    return "n/a" if value is None else f"{value:.0f} {unit}"


def summary(data: dict[str, Any]) -> str:
    """A few lines a person can read: the record, its quality, the measurements, rhythm and critical findings."""
    m = data["measurements"]
    quality = data.get("quality") or {}
    flagged = {lead: q["flags"] for lead, q in (quality.get("leads") or {}).items() if q["flags"]}
    beats = len(m.get("r_peaks") or [])
    lines = [
        f"{data['record']}: {data['duration_s']:.1f} s at {data['fs']:g} Hz, {len(data['leads'])} leads "
        f"({', '.join(data['leads'])}); quality {'usable' if quality.get('usable') else 'NOT usable'}"
        + ("; flags " + "; ".join(f"{lead}: {', '.join(f)}" for lead, f in flagged.items()) if flagged else ""),
        f"  {beats} beats; rhythm: {data['rhythm'] or 'not determined'}; HR {_fmt(m['heart_rate_bpm'], 'bpm')}, "
        f"RR {_fmt(m['rr_ms'], 'ms')}, PR {_fmt(m['pr_ms'], 'ms')}, QRS {_fmt(m['qrs_ms'], 'ms')}, "
        f"QT {_fmt(m['qt_ms'], 'ms')}, QTc {_fmt(m['qtc_ms'], 'ms')} (Bazett), axis {_fmt(m['axis_deg'], 'deg')}",
    ]
    for finding in data.get("critical") or []:
        ev = finding.get("evidence", {})
        where = f" at {ev['times_s'][0]:.1f}-{ev['times_s'][-1]:.1f} s" if ev.get("times_s") else ""
        lines.append(f"  CRITICAL {finding['rule']}: {finding['message']}{where}")
    return "\n".join(lines)
