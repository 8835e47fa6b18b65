"""The loop shared by the commands that report on several records (analyze, interpret)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from ..errors import ExitCode, UniEcgError
from ..report import Report


def report_each(paths: Sequence[Path], make_report: Callable[[Path], Report], render: Callable[[Report], str]) -> None:
    """Echo ``render(make_report(path))`` for each record. With one record an error propagates (one line, its exit
    status); with several, a failing record prints its error, the rest go on, and the command exits 2 at the end."""
    failed = 0
    for path in paths:
        try:
            report = make_report(path)
        except UniEcgError as exc:
            if len(paths) == 1:
                raise
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        click.echo(render(report))
    if failed:
        raise SystemExit(ExitCode.USAGE)
