"""The ``uniecg-edge`` command line: one click group whose subcommands load on demand.

Each command lives in ``uniecg_edge/commands/<name>.py`` and imports heavy libraries (torch, onnxruntime)
inside its body, so ``uniecg-edge analyze`` and ``--help`` start fast. Errors become one line on stderr and
an exit status (2 for bad input); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from . import __version__
from .errors import ExitCode, UniEcgError

# name -> "module:attribute" of a click.Command; the registry instead of an import of every command.
COMMANDS: dict[str, str] = {
    "analyze": "uniecg_edge.commands.analyze:analyze",
    "interpret": "uniecg_edge.commands.interpret:interpret",
    "generate": "uniecg_edge.commands.generate:generate",
    "record": "uniecg_edge.commands.record:record",
    "simulate": "uniecg_edge.commands.simulate:simulate",
    "devices": "uniecg_edge.commands.devices:devices",
    "export": "uniecg_edge.commands.export:export",
    "build-engines": "uniecg_edge.commands.build_engines:build_engines",
    "bench": "uniecg_edge.commands.bench:bench",
    "distill": "uniecg_edge.commands.distill:distill",
    "run": "uniecg_edge.commands.run:run",
    "demo": "uniecg_edge.commands.demo:demo",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        try:
            return super().main(args=argv, prog_name=prog_name or "uniecg-edge", standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, click.UsageError) and ctx is not None:
                hint = f" (see '{ctx.command_path} --help')"
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(ExitCode.FAILURE)
        except UniEcgError as exc:
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - the last line of defence of the command line
            if debug:
                raise
            click.echo(f"error: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
            sys.exit(ExitCode.FAILURE)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uniecg-edge")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Logging verbosity (default: $UNIECG_EDGE_VERBOSITY or WARNING).",
)
def main(debug: bool, log_level: str | None) -> None:
    """UniECG on the edge: interpret ECGs, generate ECGs from text, export to ONNX / TensorRT, run live."""
    from .log import configure

    configure("DEBUG" if debug and log_level is None else log_level)
