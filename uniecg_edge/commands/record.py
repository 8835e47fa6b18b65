"""``uniecg-edge record --device URL --seconds S --out PATH``: acquisition only, to WFDB.

``S`` is signal time (samples / rate). The record keeps the device's rate and lead names, in mV, unfiltered,
with III, aVR, aVL, aVF derived when I and II are present; lost samples are WFDB missing values. The device's
description and counters go to ``PATH.acquisition.json`` beside the record.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("--device", "url", required=True, metavar="URL",
              help="Device URL, e.g. openbci:///dev/ttyUSB0?gain=24 (see 'uniecg-edge devices').")
@click.option("--seconds", type=click.FloatRange(min=0.01, min_open=False), required=True,
              help="Signal time to record, in seconds (samples / rate, not wall-clock time).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output record path without extension: writes PATH.hea and PATH.dat.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def record(url: str, seconds: float, out: Path, as_json: bool) -> None:
    """Record SECONDS of signal from a device to a WFDB record."""
    from ..devices import device_from_url
    from ..devices.recorder import acquire
    from ..wfdb_io import record_base, write_record

    base = record_base(out)
    device = device_from_url(url)
    result = acquire(device, seconds, name=base.name)
    summary = result.summary()
    comments = [
        f"device: {url}",
        f"missing samples: {summary['missing_samples']}",
        f"derived leads: {', '.join(result.derived) or 'none'}",
    ]
    if result.lead_off_samples:
        comments.append("lead-off samples: " + ", ".join(f"{k} {v}" for k, v in result.lead_off_samples.items()))
    header = write_record(result.record, base, comments=comments)
    sidecar = base.with_name(base.name + ".acquisition.json")
    summary["header"] = str(header)
    sidecar.write_text(json.dumps(summary, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"wrote {header}: {result.record.duration_s:.2f} s at {result.record.fs:g} Hz, "
        f"{len(result.record.leads)} leads ({len(result.derived)} derived), "
        f"{summary['missing_samples']} missing samples" + (" (interrupted)" if result.interrupted else "")
    )
