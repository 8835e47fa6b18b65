"""``uniecg-edge devices``: the registered device kinds, their URL parameters and defaults, channels and rate."""

from __future__ import annotations

import json

import click


def _format_default(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return "-" if value is None else str(value)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the declarations as JSON.")
def devices(as_json: bool) -> None:
    """List the device kinds that --device URLs can name (kind://target?param=value)."""
    from ..devices import device_specs

    specs = device_specs()
    if as_json:
        click.echo(json.dumps([spec.to_dict() for spec in specs], indent=2))
        return
    for spec in specs:
        rate = f"{spec.fs:g} Hz" if spec.fs else "the source's rate"
        plural = "s" if (spec.channels or 0) > 1 else ""
        channels = f"{spec.channels} channel{plural}" if spec.channels else "the source's channels"
        click.echo(f"{spec.kind}://  {spec.description}")
        click.echo(f"    {channels}, {rate}; lead-off: {spec.lead_off}")
        if spec.default_leads:
            click.echo(f"    default leads: {','.join(spec.default_leads)}")
        for param in spec.params:
            extra = f" (one of {', '.join(str(c) for c in param.choices)})" if param.choices else ""
            click.echo(f"    ?{param.name}={_format_default(param.default)}  {param.help}{extra}")
        if spec.notes:
            click.echo(f"    note: {spec.notes}")
