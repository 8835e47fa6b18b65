"""``uniecg-edge run --device URL``: the live runtime (acquisition, recording, DSP, model, reports).

Reports go out as JSON lines (stdout, or ``--jsonl FILE``); the raw stream is recorded to WFDB continuously
(``--record PATH``, default ``uniecg-run-<UTC time>`` in the current folder; ``--no-record`` to skip). Start-up
problems (bad URL, bundle, lead set, a silent device) are one line and exit status 2; SIGINT and SIGTERM end
the run cleanly with exit status 0.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from ._model_options import backend_option, bundle_option, load_runner, model_option

log = logging.getLogger(__name__)


@click.command()
@click.option("--device", "url", required=True, metavar="URL",
              help="Device URL, e.g. openbci:///dev/ttyUSB0 or synthetic://?hr=72 (see 'uniecg-edge devices').")
@bundle_option
@model_option
@backend_option
@click.option("--duration", type=click.FloatRange(min=0.0, min_open=True), default=None, metavar="S",
              help="Stop after S seconds of signal (samples / rate). Default: run until Ctrl-C or SIGTERM.")
@click.option("--jsonl", default="-", show_default=True, metavar="FILE", help="JSON lines output ('-': stdout).")
@click.option("--record", "record_path", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Raw recording (WFDB PATH.hea/.dat, written continuously).")
@click.option("--no-record", is_flag=True, help="Do not record the raw stream.")
@click.option("--window", "window_s", type=click.FloatRange(min=1.0, max=60.0), default=10.0, show_default=True,
              help="Analysis window (s).")
@click.option("--hop", "hop_s", type=click.FloatRange(min=0.1, max=60.0), default=2.0, show_default=True,
              help="A new window every HOP seconds.")
@click.option("--reference", is_flag=True, help="Generate a reference ECG per report from its findings and the "
              "patient's heart rate (and --age, --sex) and compare it with the live window.")
@click.option("--reference-steps", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Scheduler steps of the reference generation.")
@click.option("--age", type=click.FloatRange(0, 130), default=None, help="Patient age (years), for --reference.")
@click.option("--sex", type=click.Choice(["M", "F"]), default=None, help="Patient sex, for --reference.")
@click.option("--png", "png_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Write a PNG (12-lead paper layout, reference overlaid) per report into DIR.")
@click.option("--lsl", "lsl_name", default=None, metavar="NAME",
              help="Also publish every event on an LSL outlet of this name (needs pylsl; skipped without it).")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=None, help="Token limit of a report.")
@click.option("--startup-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds to wait for the device's first samples.")
def run(url: str, bundle_dir: Path | None, model_dir: Path | None, backend: str | None, providers: tuple[str, ...],
        duration: float | None, jsonl: str,
        record_path: Path | None, no_record: bool, window_s: float, hop_s: float, reference: bool,
        reference_steps: int, age: float | None, sex: str | None, png_dir: Path | None, lsl_name: str | None,
        max_new_tokens: int | None, startup_timeout: float) -> None:
    """Run the live pipeline on a device: a JSON line per interpreted window, the raw stream to WFDB.

    The model is the edge bundle (--bundle, on --backend) or the torch pipeline (--model, default: the package's
    UNTRAINED default model). Windows that fail the quality gate get a report with flags and no model text.
    """
    from ..devices import device_from_url
    from ..errors import ConfigError
    from ..runtime.live import LiveConfig, LivePipeline, ReferenceSettings, SinkSet
    from ..runtime.live.pipeline import stop_on_signals

    if record_path is not None and no_record:
        raise ConfigError("give --record or --no-record, not both")
    ref = ReferenceSettings(steps=reference_steps, age=age, sex=sex) if reference else None
    config = LiveConfig(window_s=window_s, hop_s=hop_s, duration_s=duration, startup_timeout_s=startup_timeout,
                        max_new_tokens=max_new_tokens, reference=ref)
    device = device_from_url(url)  # a bad URL fails here, before anything is loaded
    from ..runtime.live.windows import LeadPlan

    LeadPlan.from_leads(device.info.leads, source=url).require_model_leads(url)
    interpreter = load_runner(model_dir, bundle_dir, backend, providers)
    if record_path is None and not no_record:
        record_path = Path(time.strftime("uniecg-run-%Y%m%d-%H%M%S", time.gmtime()))
    specs = [("jsonl", jsonl)]
    if png_dir is not None:
        specs.append(("png", str(png_dir)))
    if lsl_name is not None:
        specs.append(("lsl", lsl_name))
    sinks = SinkSet.build(specs)
    pipeline = LivePipeline(device, interpreter, config, sinks, record_path=record_path, name=_name(record_path),
                            meta={k: v for k, v in (("age", age), ("sex", sex)) if v is not None})
    with stop_on_signals(pipeline):
        summary = pipeline.run()
    samples = summary["samples"]
    click.echo(
        f"run ended ({summary['stopped_by']}): {summary['signal_s']:.1f} s of signal, {samples['acquired']} samples "
        f"acquired, {samples['dropped']} dropped, {summary['windows']} windows, {summary['interpreted']} "
        f"interpreted, {summary['rejected']} rejected, {summary['model_errors']} model errors"
        + (f"; recording {summary['recording']}" if summary["recording"] else ""), err=True)
    if summary["stopped_by"] == "error":
        raise SystemExit(1)


def _name(record_path: Path | None) -> str:
    return record_path.name if record_path is not None else "live"
