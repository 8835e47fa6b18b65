"""``run_demo``: the whole chain on a laptop: a simulated OpenBCI Cyton on a pseudo-terminal streams a real recorded
ECG, the live runtime interprets it on an edge bundle, with a reference ECG generated per report.

Order: check the record and the output folder (bad input fails before anything slow) → the bundle (``--bundle``,
else the cache, exporting once) → the runtime → the simulator thread on a pty → ``LivePipeline`` with the JSON
lines, PNG and console sinks → ``summary.json``. The simulator is stopped and its pty closed whatever happens
(end of ``seconds``, Ctrl-C / SIGTERM, an error).

Output folder (``--out``, default ``uniecg-demo``)::

    reports.jsonl          every live event (DESIGN.md §8 keys plus ``event``), the run's summary last
    png/<window>.png       the window of each report in the 12-lead paper layout, the reference drawn over it
    recording.hea/.dat     the raw stream as the device sent it (WFDB), recording.run.json its run settings
    summary.json           the demo's summary (``summary.build_summary``), with this config
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data import EXAMPLE_RECORD
from ..errors import ConfigError, InputError, LeadError
from .bundle_cache import BundleChoice, ensure_cached_bundle

log = logging.getLogger(__name__)

DEMO_PRECISIONS = ("int8", "fp32")
DEVICE_KIND = "openbci"  # OpenBCI Cyton: 8 channels at 250 Hz, leads I, II, V1-V6
SHIPPED_CREDIT = "PTB-XL, Wagner et al. 2020, CC BY 4.0"
ATTRIBUTION = EXAMPLE_RECORD.parent / "ATTRIBUTION.md"
REPORTS_NAME = "reports.jsonl"
PNG_DIR = "png"
RECORDING_NAME = "recording"
SUMMARY_NAME = "summary.json"
OWNED_NAMES = {REPORTS_NAME, PNG_DIR, SUMMARY_NAME, f"{RECORDING_NAME}.hea", f"{RECORDING_NAME}.dat",
               f"{RECORDING_NAME}.run.json", f".{SUMMARY_NAME}.tmp"}

Write = Callable[[str], None]


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``uniecg-edge demo`` (saved in ``summary.json``). ``seconds`` is signal time."""

    seconds: float = 30.0
    out: str = "uniecg-demo"
    record: str = str(EXAMPLE_RECORD)
    model: str | None = None  # checkpoint folder; None: the default model
    bundle: str | None = None  # an existing bundle: no export, no cache
    precision: str = "int8"
    backend: str = "auto"
    speed: float = 1.0  # simulator pace relative to real time
    window_s: float = 10.0
    hop_s: float = 2.0
    reference_steps: int = 8
    max_new_tokens: int | None = None
    startup_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.precision not in DEMO_PRECISIONS:
            raise ConfigError(f"the demo runs precision {' or '.join(DEMO_PRECISIONS)}, not {self.precision!r}")
        if not (math.isfinite(self.speed) and 0.01 <= self.speed <= 1000):
            raise ConfigError(f"speed must be 0.01 to 1000 times real time, got {self.speed}")
        if not math.isfinite(self.seconds) or self.seconds < self.window_s:
            raise ConfigError(f"--seconds must be at least one analysis window ({self.window_s:g} s), "
                              f"got {self.seconds:g}")
        if self.bundle is not None and self.model is not None and self.backend != "torch":
            raise ConfigError("give --model or --bundle, not both (--model with --bundle only for --backend torch)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DemoPaths:
    """Where a demo writes (see the module docstring)."""

    out: Path

    @property
    def reports(self) -> Path:
        return self.out / REPORTS_NAME

    @property
    def png_dir(self) -> Path:
        return self.out / PNG_DIR

    @property
    def recording(self) -> Path:
        return self.out / RECORDING_NAME

    @property
    def summary(self) -> Path:
        return self.out / SUMMARY_NAME


def check_output(out: str | os.PathLike[str]) -> Path:
    """Refuse an ``out`` that is not a folder or that holds anything but an earlier demo's files (the demo never
    overwrites files it did not write). Creates nothing."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path}: exists and is not a folder")
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in OWNED_NAMES)
        if foreign:
            raise InputError(f"--out {path}: folder holds files the demo did not write ({', '.join(foreign[:3])}"
                             f"{', …' if len(foreign) > 3 else ''}); choose an empty or new folder")
    return path


def prepare_output(out: str | os.PathLike[str]) -> DemoPaths:
    """Create ``out`` (``check_output`` first), clearing an earlier demo's PNGs and summary."""
    path = check_output(out)
    paths = DemoPaths(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if paths.png_dir.is_dir():
            for old in paths.png_dir.glob("*.png"):
                old.unlink()
        paths.summary.unlink(missing_ok=True)
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None
    return paths


def _supplies(names: list[str], lead: str) -> bool:
    from ..devices.simulators.waveform import LEAD_ALIASES
    from ..leads import find_lead

    aliased = [LEAD_ALIASES.get(n.strip().upper(), n.strip()) for n in names]
    if find_lead(aliased, lead) is not None:
        return True
    limb = sum(find_lead(aliased, x) is not None for x in ("I", "II", "III"))
    return lead.upper() in ("I", "II", "III") and limb >= 2  # the third limb lead derives from two


def check_record(path: str | os.PathLike[str], leads: tuple[str, ...]) -> dict[str, Any]:
    """Read the record the simulator will stream (``RecordError`` in one line when it cannot) and check that it
    supplies ``leads``; returns its name, fs, duration, age and sex (from the header, when present)."""
    from ..wfdb_io import read_record

    record = read_record(path)
    missing = [lead for lead in leads if not _supplies(list(record.leads), lead)]
    if missing:
        raise LeadError(f"--record {path}: no lead {', '.join(missing)} (the simulated Cyton sends "
                        f"{', '.join(leads)})")
    shipped = Path(path).resolve().with_suffix("") == EXAMPLE_RECORD.resolve().with_suffix("")
    return {"path": str(path), "name": record.name, "fs": record.fs, "duration_s": round(record.duration_s, 3),
            "age": record.meta.get("age"), "sex": record.meta.get("sex"),
            "credit": SHIPPED_CREDIT if shipped else None}


def resolve_bundle(config: DemoConfig, progress: Write) -> BundleChoice:
    """``--bundle`` as given (verified when the runtime opens it, so nothing is said before), else the cached bundle
    of the model."""
    if config.bundle is not None:
        return BundleChoice(Path(config.bundle), "given")
    return ensure_cached_bundle(config.model, config.precision, progress)


@contextlib.contextmanager
def running_simulator(record: str | os.PathLike[str], speed: float, kind: str = DEVICE_KIND) -> Iterator[Any]:
    """A device simulator of ``kind`` streaming ``record`` (looping) on a pseudo-terminal, in a thread; stopped,
    joined and its pty closed on exit, whatever ended the block."""
    from ..devices.simulators import SimulatorConfig, create_simulator

    simulator = create_simulator(kind, SimulatorConfig(record=str(record), speed=speed))
    _ = simulator.source  # load the record now, before the port exists
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()
        if simulator.is_alive():
            log.warning("the %s simulator did not stop within its timeout", kind)


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
    os.replace(tmp, path)


def run_demo(config: DemoConfig, *, report_line: Write, progress: Write) -> dict[str, Any]:
    """Run the demo; ``report_line`` gets one line per live event, ``progress`` the set-up messages. Returns the
    summary (also written to ``summary.json``). Start-up problems raise one-line ``UniEcgError``s."""
    from ..commands._model_options import load_runner
    from ..devices import device_from_url
    from ..devices.openbci import DEFAULT_LEADS_8
    from ..runtime.live import LiveConfig, LivePipeline, ReferenceSettings, SinkSet, stop_on_signals
    from .console import ConsoleSink
    from .summary import build_summary

    record = check_record(config.record, DEFAULT_LEADS_8)
    check_output(config.out)  # bad input fails before the (possibly long) export
    choice = resolve_bundle(config, progress)
    runner = load_runner(Path(config.model) if config.model and config.backend == "torch" else None,
                         choice.path, config.backend)
    paths = prepare_output(config.out)
    provenance = runner.provenance() if hasattr(runner, "provenance") else {}
    given = " (--bundle: verified, not cached)" if choice.source == "given" else ""
    progress(f"runtime: {provenance.get('backend')} ({provenance.get('execution_provider')}), "
             f"{provenance.get('precision')} bundle {choice.path}{given}")
    if provenance.get("trained") is False:
        progress(f"note: {provenance.get('model')} is UNTRAINED (random weights): its text is meaningless; "
                 "the DSP figures (heart rate, rhythm, intervals) are real")
    patient = {k: record[k] for k in ("age", "sex") if record.get(k) is not None}
    live = LiveConfig(window_s=config.window_s, hop_s=config.hop_s, duration_s=config.seconds,
                      startup_timeout_s=config.startup_timeout_s, max_new_tokens=config.max_new_tokens,
                      reference=ReferenceSettings(steps=config.reference_steps, **patient))
    console = ConsoleSink(report_line)
    with running_simulator(config.record, config.speed) as simulator:
        credit = f" ({record['credit']}; see {ATTRIBUTION})" if record["credit"] else ""
        progress(f"streaming {record['name']}{credit} through a simulated OpenBCI Cyton on {simulator.path} at "
                 f"{config.speed:g}x real time, for {config.seconds:g} s of signal")
        device = device_from_url(f"{DEVICE_KIND}://{simulator.path}")
        built = SinkSet.build([("jsonl", str(paths.reports)), ("png", str(paths.png_dir))])
        sinks = SinkSet([*built.sinks, console])
        try:
            pipeline = LivePipeline(device, runner, live, sinks, record_path=paths.recording, name=record["name"],
                                    meta=patient)
        except BaseException:
            sinks.close()
            raise
        try:
            with stop_on_signals(pipeline):
                run = pipeline.run()  # closes the sinks (and the device) however it ends
        finally:
            device.close()
        if simulator.error is not None:
            log.warning("the simulator failed during the demo: %s", simulator.error)
    pngs = sorted(p.name for p in paths.png_dir.glob("*.png"))
    files = {"reports": str(paths.reports), "png_dir": str(paths.png_dir), "png": pngs,
             "recording": str(paths.recording) + ".hea", "summary": str(paths.summary)}
    summary = build_summary(config=config.to_dict(), record=record, events=console.events, run=run,
                            bundle=choice.to_dict(), provenance=provenance, files=files)
    _write_json_atomically(paths.summary, summary)
    return summary
