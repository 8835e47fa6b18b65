"""``uniecg-edge build-engines BUNDLE``: TensorRT engines for this GPU, cached in ``BUNDLE/engines/<key>/``."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("build-engines")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--fp32", "precision", flag_value="fp32", default=True, help="Full precision (default).")
@click.option("--fp16", "precision", flag_value="fp16", help="Allow fp16 kernels (TensorRT 11: needs an fp16 bundle).")
@click.option("--int8", "precision", flag_value="int8",
              help="int8 where the graph has Q/DQ nodes, fp16 elsewhere (needs a static Q/DQ int8 bundle).")
@click.option("--graph", "graphs", multiple=True, help="Build only this graph (repeatable; default: all).")
@click.option("--max-batch", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Largest batch of the fallback optimization profile.")
@click.option("--max-context", type=click.IntRange(1, 1 << 20), default=None,
              help="Largest sequence / past length of the fallback profile (default: from config.json).")
@click.option("--workspace-mib", type=click.IntRange(1, 1 << 20), default=2048, show_default=True,
              help="TensorRT workspace memory limit.")
@click.option("--force", is_flag=True, help="Rebuild even when a cached engine has the same key.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per engine.")
def build_engines(bundle: Path, precision: str, graphs: tuple[str, ...], max_batch: int, max_context: int | None,
                  workspace_mib: int, force: bool, as_json: bool) -> None:
    """Build TensorRT engines for the graphs of BUNDLE on this GPU (reused when GPU, TensorRT, graph and
    precision match). Needs the tensorrt Python package: on Jetson JetPack's python3-libnvinfer in a venv made
    with --system-site-packages. Not yet run on a GPU by the project's tests."""
    from ..export.trt import BuildOptions
    from ..export.trt import build_engines as build

    options = BuildOptions(precision=precision, graphs=graphs or None, max_batch=max_batch,
                           max_context=max_context, workspace_mib=workspace_mib, force=force)
    for result in build(bundle, options):
        if as_json:
            click.echo(json.dumps(result.to_dict(), sort_keys=True))
            continue
        what = "engine cache hit" if result.cache_hit else f"built in {result.build_s:.1f} s"
        typing = "strongly typed" if result.strongly_typed else "weakly typed"
        click.echo(f"{result.graph}: {what}, {result.precision} {typing} -> {result.plan}")
