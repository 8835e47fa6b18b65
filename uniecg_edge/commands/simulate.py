"""``uniecg-edge simulate KIND``: a serial ECG device simulated on a pseudo-terminal.

Prints the port path on its first line (then flushes), and streams the device's exact bytes until killed or
``--seconds`` (wall clock) pass. Command-driven boards (openbci, hackeeg) stream after their start command;
Arduino-style boards (olimex, ads1292r, ad8232) start when a program opens the port, as their reset does.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click


def _window(text: str) -> tuple[float, float]:
    begin, sep, end = text.partition(":")
    try:
        window = (float(begin), float(end))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not START:END in seconds") from None
    if not sep or window[1] <= window[0]:
        raise click.BadParameter(f"{text!r} is not START:END with END > START")
    return window


@click.command()
@click.argument("kind")
@click.option("--record", "record_path", type=click.Path(path_type=Path), default=None,
              help="WFDB record to stream (default: the synthetic generator).")
@click.option("--speed", type=click.FloatRange(0.01, 1000.0), default=1.0, show_default=True,
              help="Pace relative to real time.")
@click.option("--seconds", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Stop after this many wall-clock seconds (default: run until killed).")
@click.option("--link", type=click.Path(path_type=Path), default=None,
              help="Also expose the port as this symlink (a stable path).")
@click.option("--leads", default=None, help="Lead on each wire channel, comma-separated ('-' = flat).")
@click.option("--lead-off", "lead_off", multiple=True, metavar="START:END",
              help="Signal-time window (s) with an electrode off; repeatable.")
@click.option("--drop-every", type=click.IntRange(min=0), default=0, help="Lose every N-th packet.")
@click.option("--garbage-every", type=click.IntRange(min=0), default=0, help="Noise bytes after every N-th packet.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def simulate(kind: str, record_path: Path | None, speed: float, seconds: float | None, link: Path | None,
             leads: str | None, lead_off: tuple[str, ...], drop_every: int, garbage_every: int, seed: int) -> None:
    """Simulate a serial ECG device of KIND (openbci, openbci-daisy, olimex, ads1292r, hackeeg, ad8232)."""
    from ..devices.simulators import SimulatorConfig, create_simulator
    from ..devices.url import parse_leads
    from ..errors import ConfigError, DeviceError

    lead_names = None
    if leads:
        try:
            lead_names = parse_leads(leads)
        except ValueError as exc:
            raise ConfigError(f"--leads {leads!r}: {exc}") from None
    config = SimulatorConfig(
        speed=speed, record=str(record_path) if record_path else None, leads=lead_names,
        link=str(link) if link else None, lead_off=tuple(_window(w) for w in lead_off),
        drop_every=drop_every, garbage_every=garbage_every, seed=seed,
    )
    simulator = create_simulator(kind, config)
    _ = simulator.source  # load the record now: a bad path fails before the port is announced
    stop = {"now": False}

    def _terminate(signum: int, frame: object) -> None:
        stop["now"] = True

    previous = signal.signal(signal.SIGTERM, _terminate)
    simulator.start()
    try:
        click.echo(simulator.path)
        sys.stdout.flush()
        deadline = None if seconds is None else time.monotonic() + seconds
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            if simulator.error is not None:
                raise DeviceError(f"{kind} simulator failed: {simulator.error}")
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        signal.signal(signal.SIGTERM, previous)
