"""``uniecg-edge interpret RECORD…``: DSP measurements plus the model's report with the evidence check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..report import Report
from ._model_options import backend_option, bundle_option, load_runner, model_option
from ._records import report_each
from .analyze import summary


@click.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@bundle_option
@backend_option
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=None, help="Token limit of the report.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line (DESIGN.md §8 keys).")
@click.option("--reference", is_flag=True, help="Also generate a reference ECG from the findings and the patient "
              "(8 steps), compare it with the record (JSON 'reference') and draw both in RECORD.reference.png here.")
def interpret(records: tuple[Path, ...], model_dir: Path | None, bundle_dir: Path | None, backend: str | None,
              providers: tuple[str, ...], max_new_tokens: int | None, as_json: bool, reference: bool) -> None:
    """Interpret WFDB RECORDS (.hea with .dat or .mat): measurements, model text, claims and discrepancies.

    The model needs the 12 standard leads (III, aVR, aVL, aVF are derived from I and II when absent);
    records without them are refused. Several records: a failing one prints its error and the rest go on.
    With --bundle the edge bundle runs on the on-device runtime; provenance names the backend and the execution
    provider that really ran.
    """
    from ..dsp import analyze_record
    from ..wfdb_io import read_record

    pipeline = load_runner(model_dir, bundle_dir, backend, providers)

    def make_report(path: Path) -> Report:
        record = read_record(path)
        report = pipeline.interpret(record, max_new_tokens=max_new_tokens, base_report=analyze_record(record))
        if reference:
            from ..runtime.live.reference import add_reference

            add_reference(pipeline, record, report)
        return report

    report_each(records, make_report, lambda report: report.to_json() if as_json else _summary(report.to_dict()))


def _summary(data: dict[str, Any]) -> str:
    """The DSP summary of ``analyze`` plus the model's text and every discrepancy."""
    prov = data["provenance"]
    lines = [summary(data), f"  model ({prov.get('model')}, trained={prov.get('trained')}): {data['text']!r}"]
    for d in data.get("discrepancies") or []:
        lines.append(f"  DISCREPANCY {d['key']}: text says {_value(d['claimed'])}, "
                     f"signal measures {_value(d['measured'])}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    """A claimed or measured value: numbers as ``:g``, rhythm names as they are."""
    return f"{value:g}" if isinstance(value, int | float) else str(value)
