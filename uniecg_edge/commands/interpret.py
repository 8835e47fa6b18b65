"""``uniecg-edge interpret RECORD…``: DSP measurements plus the model's report with the evidence check."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ExitCode, UniEcgError
from ._model_options import backend_option, load_pipeline, model_option


@click.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@backend_option
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=None, help="Token limit of the report.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line (DESIGN.md §8 keys).")
def interpret(records: tuple[Path, ...], model_dir: Path | None, backend: str, max_new_tokens: int | None,
              as_json: bool) -> None:
    """Interpret WFDB RECORDS (.hea with .dat or .mat): measurements, model text, claims and discrepancies.

    The model needs the 12 standard leads (III, aVR, aVL, aVF are derived from I and II when absent);
    records without them are refused. Several records: a failing one prints its error and the rest go on.
    """
    from ..dsp import analyze_record
    from ..wfdb_io import read_record

    pipeline = load_pipeline(model_dir)
    failed = 0
    for path in records:
        try:
            record = read_record(path)
            report = pipeline.interpret(record, max_new_tokens=max_new_tokens, base_report=analyze_record(record))
        except UniEcgError as exc:
            if len(records) == 1:
                raise
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        click.echo(report.to_json() if as_json else _summary(report.to_dict()))
    if failed:
        raise SystemExit(ExitCode.USAGE)


def _fmt(value: object, unit: str) -> str:
    return "n/a" if value is None else f"{value:.0f} {unit}" if isinstance(value, float) else f"{value} {unit}"


def _summary(data: dict) -> str:
    m = data["measurements"]
    lines = [
        f"{data['record']}: {data['rhythm'] or 'rhythm not determined'}, HR {_fmt(m['heart_rate_bpm'], 'bpm')}, "
        f"PR {_fmt(m['pr_ms'], 'ms')}, QRS {_fmt(m['qrs_ms'], 'ms')}, QTc {_fmt(m['qtc_ms'], 'ms')}, "
        f"axis {_fmt(m['axis_deg'], 'deg')}",
        f"  model ({data['provenance'].get('model')}, trained={data['provenance'].get('trained')}): {data['text']!r}",
    ]
    for d in data.get("discrepancies") or []:
        lines.append(f"  DISCREPANCY {d['key']}: text says {d['claimed']:g}, signal measures {d['measured']:g}")
    for c in data.get("critical") or []:
        lines.append(f"  CRITICAL {c.get('rule', c)}")
    return "\n".join(lines)
