"""``uniecg-edge demo``: the whole chain with no hardware: a simulated OpenBCI Cyton streams a real recorded ECG,
the live runtime interprets it on an int8 edge bundle (exported once and cached), one line per report, a summary.

The library side is ``uniecg_edge.demo``; this command only maps options and prints. Set-up messages go to
stderr; report lines and the summary to stdout (with ``--json``: the report lines to stderr, one JSON object
to stdout). Bad input (a missing ``--record``, a ``--bundle`` that fails verification) is one line, exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._model_options import BACKENDS, bundle_option, model_option


@click.command()
@click.option("--seconds", type=click.FloatRange(min=10.0), default=30.0, show_default=True,
              help="Signal seconds to run (at least one 10 s analysis window).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("uniecg-demo"), show_default=True,
              help="Output folder: reports.jsonl, png/, the raw recording (WFDB) and summary.json.")
@model_option
@bundle_option
@click.option("--precision", type=click.Choice(["int8", "fp32"]), default="int8", show_default=True,
              help="Precision of the bundle exported (once, then cached) from the model.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="Inference backend (auto: the fastest available here, named in the summary).")
@click.option("--speed", type=click.FloatRange(0.01, 1000.0), default=1.0, show_default=True,
              help="Pace of the simulated device relative to real time.")
@click.option("--record", "record_path", type=click.Path(path_type=Path), default=None,
              help="WFDB record to stream (default: the shipped PTB-XL record HR06004, CC BY 4.0).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
def demo(seconds: float, out: Path, model_dir: Path | None, bundle_dir: Path | None, precision: str, backend: str,
         speed: float, record_path: Path | None, as_json: bool) -> None:
    """Run the whole chain on a simulated device streaming a real recorded ECG (no hardware needed).

    Starts an OpenBCI Cyton simulator on a pseudo-terminal, exports the model (default: the package's default
    model, see --model) to an edge bundle unless one is cached, runs the live runtime with a reference ECG per
    report, prints each report and ends with a summary (model provenance included: trained or not).
    """
    from ..data import EXAMPLE_RECORD
    from ..demo import DemoConfig, run_demo
    from ..demo.summary import format_summary

    config = DemoConfig(seconds=seconds, out=str(out), record=str(record_path or EXAMPLE_RECORD),
                        model=str(model_dir) if model_dir is not None else None,
                        bundle=str(bundle_dir) if bundle_dir is not None else None,
                        precision=precision, backend=backend, speed=speed)
    summary = run_demo(config, report_line=lambda line: click.echo(line, err=as_json),
                       progress=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(summary, allow_nan=False, default=str))
    else:
        click.echo(format_summary(summary))
    if summary["stopped_by"] == "error":
        raise SystemExit(1)
