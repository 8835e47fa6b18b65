"""``uniecg-edge bench``: per-stage latency percentiles, backends and precisions side by side, JSON + Markdown."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import ConfigError


def _names(value: str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise ConfigError(f"--{what}: give at least one name")
    return names


def _steps(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if value.strip().lower() == "none":
        return ()
    try:
        steps = tuple(int(v) for v in (_names(value, "scale-steps") or ()))
    except ValueError:
        raise ConfigError(f"--scale-steps: expected whole numbers or 'none', got {value!r}") from None
    if any(s < 1 or s > 1000 for s in steps):
        raise ConfigError(f"--scale-steps: steps must be within 1..1000, got {value!r}")
    return steps


@click.command()
@click.option("--bundle", "bundles", multiple=True, type=click.Path(path_type=Path),
              help="Edge bundle(s) to time (repeatable). Default: the model exported at each precision (cached).")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoint for the torch reference and for the export (default: the package's default model, "
                   "UNTRAINED).")
@click.option("--backends", default=None, metavar="LIST",
              help="Comma-separated: torch,onnxruntime,tensorrt (default: all; missing ones are listed as skipped).")
@click.option("--precisions", default=None, metavar="LIST",
              help="Comma-separated: fp32,fp16,int8,int4 (default: fp32,int8; --scale: fp32,int8,int4).")
@click.option("--repeats", type=click.IntRange(1, 100000), default=20, show_default=True,
              help="Timed runs per stage (after the warm-up).")
@click.option("--warmup", type=click.IntRange(0, 1000), default=3, show_default=True, help="Untimed runs per stage.")
@click.option("--budget-s", type=click.FloatRange(min=0.001), default=60.0, show_default=True,
              help="A stage stops repeating once its timed runs took this long (at least 2 runs).")
@click.option("--record", "records", multiple=True, type=click.Path(path_type=Path),
              help="WFDB record(s) whose 10 s windows are the inputs (default: the shipped 12-lead record).")
@click.option("--windows", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Windows taken from each record.")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="CPU threads for torch and onnxruntime (default: $OMP_NUM_THREADS, else the usable cores that "
                   "other processes leave free: cores minus those busy in a 0.5 s sample of /proc/stat, else "
                   "minus the 1-minute load average; at least 1).")
@click.option("--providers", default=None, metavar="LIST",
              help="onnxruntime execution providers, e.g. cuda,cpu (default: the runtime's choice).")
@click.option("--device-profile", default=None, metavar="NAME",
              help="Take the bandwidth for the ceilings from a Jetson profile (agx-orin, orin-nx, orin-nano, "
                   "orin-nano-super, thor) instead of measuring it.")
@click.option("--stages", default=None, metavar="LIST", help="Only these stages (comma-separated names).")
@click.option("--scale", is_flag=True,
              help="Instead of the stage table: decode tokens/s and memory against model size (up to a 0.5 B "
                   "random-weight decoder), context and batch; generation time against scheduler steps.")
@click.option("--scale-decoders", default=None, metavar="LIST",
              help="Decoders of --scale (default: default,llama-45m,qwen2-100m,qwen2-0.5b).")
@click.option("--scale-steps", default=None, metavar="LIST",
              help="Scheduler steps of the --scale generation sweep (default: 1,5,10,25,50; 'none': no sweep).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the JSON result.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), default=None,
              help="Write the Markdown report (it is printed either way).")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def bench(bundles: tuple[Path, ...], model_dir: Path | None, backends: str | None, precisions: str | None,
          repeats: int, warmup: int, budget_s: float, records: tuple[Path, ...], windows: int, threads: int | None,
          providers: str | None, device_profile: str | None, stages: str | None, scale: bool,
          scale_decoders: str | None, scale_steps: str | None, json_path: Path | None, markdown_path: Path | None,
          quiet: bool) -> None:
    """Time every stage of the pipeline on every backend and precision available here, on real ECG windows.

    Stages: preprocessing + DSP, ECG encoder, prefill, decode per token, time to first token, full report,
    generation head + one UNet step, full generation, VAE decode, end to end (window -> report); p50/p95/p99 ms,
    decode tokens/s, real-time factor, peak memory, model bytes, and the decode bandwidth ceiling. Without
    options: the default model at fp32 and int8 on every backend present (a missing backend is listed as skipped
    with the reason).
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from ..bench.machine import choose_threads
    from ..bench.report import markdown, write_json
    from ..bench.runner import BenchConfig, run_bench
    from ..bench.timing import TimingConfig
    from ..data import EXAMPLE_RECORD

    for path in (json_path, markdown_path):
        if path is not None and not path.parent.exists():
            raise ConfigError(f"{path.parent}: folder does not exist (for {path.name})")
    chosen = (threads, "--threads") if threads else choose_threads()
    config = BenchConfig(
        backends=_names(backends, "backends"), precisions=_names(precisions, "precisions"),
        bundles=tuple(bundles), model_dir=model_dir, records=tuple(records) or (EXAMPLE_RECORD,),
        windows_per_record=windows, timing=TimingConfig(warmup=warmup, repeats=repeats, budget_s=budget_s),
        threads=threads or chosen[0], device_profile=device_profile, providers=_names(providers, "providers"),
        scale=scale, scale_decoders=_names(scale_decoders, "scale-decoders"), stages=_names(stages, "stages"),
        threads_reason=chosen[1], scale_steps=_steps(scale_steps),
    )
    config.check()  # names first: a typo fails in one line before anything loads
    if config.scale_decoders:
        from ..bench.scale import SCALE_DECODERS

        for name in config.scale_decoders:
            SCALE_DECODERS.get(name)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # an onnxruntime-only install has no transformers
        pass

    def progress(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    result = run_bench(config, progress)
    text = markdown(result)
    if json_path is not None:
        write_json(result, json_path)
        progress(f"JSON: {json_path}")
    if markdown_path is not None:
        markdown_path.write_text(text)
        progress(f"Markdown: {markdown_path}")
    click.echo(text, nl=False)
