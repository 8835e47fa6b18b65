"""``uniecg-edge export``: UniECG checkpoint -> ONNX graphs checked against PyTorch -> checksummed edge bundle."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from ._model_options import model_option

log = logging.getLogger(__name__)

PRECISION_CHOICES = ("fp32", "fp16", "int8", "int4")  # = uniecg_edge.export.exporter.PRECISIONS (test-checked)


@click.command()
@model_option
@click.option("--out", "-o", "out", required=True, type=click.Path(path_type=Path),
              help="Bundle folder to create (refused if it exists, unless --overwrite).")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default=None,
              help="Graph precision (default fp32); --fp16 / --int8 / --int4 are shortcuts.")
@click.option("--fp16", is_flag=True, help="fp16 graphs (checked against torch fp32 at the fp16 tolerance).")
@click.option("--int8", is_flag=True, help="int8 graphs (dynamic, or static QDQ with --calibration-record).")
@click.option("--int4", is_flag=True, help="int4 weight-only decoder (MatMulNBits).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing bundle folder (only once the new one is complete).")
@click.option("--opset", type=click.IntRange(18, 23), default=18, show_default=True, help="ONNX opset.")
@click.option("--parity-record", "parity_records", multiple=True, type=click.Path(path_type=Path),
              help="WFDB record(s) for the parity checks (default: the shipped example record).")
@click.option("--calibration-record", "calibration_records", multiple=True, type=click.Path(path_type=Path),
              help="WFDB record(s) whose 10 s windows calibrate --int8 (static QDQ); without: int8 dynamic.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object instead of a table.")
def export(model_dir: Path | None, out: Path, precision: str | None, fp16: bool, int8: bool, int4: bool,
           overwrite: bool, opset: int, parity_records: tuple[Path, ...], calibration_records: tuple[Path, ...],
           as_json: bool) -> None:
    """Export a UniECG checkpoint (default: the package's UNTRAINED default model) into an edge bundle.

    Each graph (ecg_encoder, embed_tokens, decoder, gen_head, unet_cond, unet, vae_decoder) is exported with
    torch.onnx (dynamo), run in onnxruntime on a real ECG and compared with PyTorch at its tolerance; greedy
    decoding through the graphs must give the torch tokens. A failure leaves no bundle behind (exit 2).
    """
    chosen = [name for name, flag in (("fp16", fp16), ("int8", int8), ("int4", int4)) if flag]
    if precision is not None:
        chosen.append(precision)
    if len(set(chosen)) > 1:
        raise click.UsageError(f"choose one precision, got {', '.join(sorted(set(chosen)))}")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from ..data import EXAMPLE_RECORD
    from ..export.bundle import check_output_folder
    from ..export.exporter import ExportOptions, export_bundle

    check_output_folder(out, overwrite)  # before anything is loaded or said
    if model_dir is None:
        from ..model.default import default_model_dir

        model_dir = default_model_dir()
        if not json.loads((model_dir / "config.json").read_text()).get("trained", True):
            log.warning("exporting the default model, which is untrained: its output is meaningless")
    options = ExportOptions(precision=chosen[0] if chosen else "fp32", opset=opset, overwrite=overwrite,
                            parity_records=tuple(parity_records) or (EXAMPLE_RECORD,),
                            calibration_records=tuple(calibration_records))
    manifest = export_bundle(out, model_dir, options, progress=lambda line: click.echo(line, err=True))
    rows = summary_rows(manifest)
    if as_json:
        click.echo(json.dumps({"bundle": str(out), "graphs": rows, "parity": manifest["parity"],
                               "manifest": manifest}))
    else:
        click.echo(format_table(rows))
        click.echo(greedy_line(manifest["parity"]))
        click.echo(f"bundle: {out} ({manifest['precision']}, opset {manifest['opset']}, "
                   f"{sum(r['size_bytes'] for r in rows) / 1e6:.2f} MB in {len(rows)} graphs)")


def summary_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, graph in manifest["graphs"].items():
        parity = graph["parity"]
        metric = parity.get("metric", "max_abs_diff")
        rows.append({"graph": name, "precision": graph["precision"], "size_bytes": graph["size_bytes"],
                     "metric": metric, "error": parity[metric], "max_abs_diff": parity["max_abs_diff"],
                     "tolerance": parity["tolerance"], "passed": parity["passed"],
                     "time_s": round(graph["export_s"] + graph["check_s"], 2)})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("graph", "precision", "size", "parity (error / tol)", "pass", "time")
    short = {"max_abs_diff": "max|diff|", "relative_max_error": "rel.err"}
    body = [(r["graph"], r["precision"], f"{r['size_bytes'] / 1e6:.2f} MB",
             f"{short.get(r['metric'], r['metric'])} {r['error']:.2e} / {r['tolerance']:.0e}",
             "yes" if r["passed"] else "NO", f"{r['time_s']:.1f} s") for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def greedy_line(parity: dict[str, Any]) -> str:
    if parity.get("greedy_tokens_equal") is None:
        return "greedy decoding: not checked (the bundle lacks the understanding-path graphs)"
    verdict = "same tokens as torch" if parity["greedy_tokens_equal"] else "tokens DIFFER from torch"
    records = ", ".join(parity["records"])
    return f"greedy decoding through ONNX: {verdict} ({parity['num_tokens']} tokens max; {records})"
