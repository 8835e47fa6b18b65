"""On-device runtime latency: text -> ECG with few sampler steps, and ECG -> text, side by side in one process.

Generation (``EdgeRuntime.generate``, onnxruntime CPU) on the int8 bundle (the default export precision of the
runtime) and on the fp32 bundle, with DDIM 8, DPM-Solver++ 8 and DPM-Solver++ 4 steps: the UNet step (median per
step), the diffusion loop, the condition (decoding up to the [ECG] tokens), the VAE, the 500 Hz resampling and the
total. Interpretation of the same record: encoder, prefill, per token, total; onnxruntime int8 and fp32 bundles
and the torch fp32 reference pipeline (greedy, a fixed number of new tokens). Every figure is the median of
``--repeats`` runs after ``--warmup`` runs; the machine is named in the output.

    OMP_NUM_THREADS=1 python benchmarks/runtime_bench.py [--int8-bundle DIR] [--fp32-bundle DIR] [--threads 1]
        [--repeats 10] [--warmup 2] [--tokens 32] [--record PATH] [--json out.json]

Bundles not given are exported from the default model into a temporary folder first (about 30 s each).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

GENERATION_CASES = (("ddim", 8), ("dpmsolver++", 8), ("dpmsolver++", 4))
GENERATION_KEYS = ("diffusion_per_step_s", "diffusion_s", "condition_s", "vae_decode_s", "resample_s", "total_s")
INTERPRET_KEYS = ("ecg_encoder_s", "prefill_s", "decode_per_token_s", "total_s")


def machine(threads: int) -> dict[str, Any]:
    from uniecg_edge.bench.machine import collect_machine

    return collect_machine(threads)


def medians(runs: list[dict[str, float]], keys: tuple[str, ...]) -> dict[str, float]:
    """Median of each key over the runs, in milliseconds."""
    return {key.removesuffix("_s") + "_ms": round(1000 * statistics.median(r[key] for r in runs), 3) for key in keys}


def repeat(call: Callable[[], dict[str, float]], repeats: int, warmup: int) -> list[dict[str, float]]:
    for _ in range(warmup):
        call()
    return [call() for _ in range(repeats)]


def bundle_dir(given: Path | None, precision: str, scratch: Path) -> Path:
    if given is not None:
        return given
    from uniecg_edge.export import ExportOptions, export_bundle

    out = scratch / f"bundle-{precision}"
    started = time.perf_counter()
    export_bundle(out, options=ExportOptions(precision=precision))
    print(f"exported the {precision} bundle in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return out


def bench_generation(runtime: Any, repeats: int, warmup: int) -> list[dict[str, Any]]:
    rows = []
    for kind, steps in GENERATION_CASES:
        def once(kind: str = kind, steps: int = steps) -> dict[str, float]:
            result = runtime.generate("normal sinus rhythm", hr=70, age=50, sex="F", steps=steps, scheduler=kind,
                                      seed=0)
            return result.timings

        rows.append({"scheduler": kind, "steps": steps, **medians(repeat(once, repeats, warmup), GENERATION_KEYS)})
    return rows


def bench_interpret(interpret: Callable[[], Any], repeats: int, warmup: int) -> dict[str, float]:
    def once() -> dict[str, float]:
        report = interpret()
        return dict(report.provenance["timings_s"])

    runs = repeat(once, repeats, warmup)
    return {"tokens": int(statistics.median(r["decode_tokens"] for r in runs)), **medians(runs, INTERPRET_KEYS)}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']} ({m['cores']} cores, {m['threads']} thread(s)), onnxruntime {m['onnxruntime']}, "
             f"torch {m['torch']}; medians of {result['repeats']} runs", "",
             "| bundle | sampler | steps | per step ms | diffusion ms | condition ms | VAE ms | resample ms "
             "| total ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["generation"]:
        lines.append(f"| {row['bundle']} | {row['scheduler']} | {row['steps']} | {row['diffusion_per_step_ms']} | "
                     f"{row['diffusion_ms']} | {row['condition_ms']} | {row['vae_decode_ms']} | "
                     f"{row['resample_ms']} | {row['total_ms']} |")
    lines += ["", "| interpret | tokens | encoder ms | prefill ms | per token ms | total ms |",
              "|---|---|---|---|---|---|"]
    for name, row in result["interpret"].items():
        lines.append(f"| {name} | {row['tokens']} | {row['ecg_encoder_ms']} | {row['prefill_ms']} | "
                     f"{row['decode_per_token_ms']} | {row['total_ms']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--int8-bundle", type=Path, default=None)
    parser.add_argument("--fp32-bundle", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op and torch threads")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per interpretation (greedy)")
    parser.add_argument("--record", type=Path, default=None, help="WFDB record (default: the shipped HR06004)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from uniecg_edge.data import EXAMPLE_RECORD
    from uniecg_edge.model.default import default_model_dir
    from uniecg_edge.model.pipeline import TorchPipeline
    from uniecg_edge.runtime import EdgeRuntime
    from uniecg_edge.wfdb_io import read_record

    torch.set_num_threads(args.threads)
    record = read_record(args.record or EXAMPLE_RECORD)
    result: dict[str, Any] = {"machine": machine(args.threads), "repeats": args.repeats, "warmup": args.warmup,
                              "record": record.name, "generation": [], "interpret": {}}
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as scratch:
        bundles = {"int8": bundle_dir(args.int8_bundle, "int8", Path(scratch)),
                   "fp32": bundle_dir(args.fp32_bundle, "fp32", Path(scratch))}
        for precision, path in bundles.items():
            runtime = EdgeRuntime.from_bundle(path, backend="onnxruntime", providers=["cpu"],
                                              intra_op_threads=args.threads)
            for row in bench_generation(runtime, args.repeats, args.warmup):
                result["generation"].append({"bundle": f"onnxruntime {precision}", **row})
            result["interpret"][f"onnxruntime {precision}"] = bench_interpret(
                partial(runtime.interpret, record, max_new_tokens=args.tokens), args.repeats, args.warmup)
        pipeline = TorchPipeline.from_pretrained(default_model_dir())
        result["interpret"]["torch fp32 (reference)"] = bench_interpret(
            partial(pipeline.interpret, record, max_new_tokens=args.tokens), args.repeats, args.warmup)
    table = markdown(result)
    print(table)
    if args.json is not None:
        args.json.write_text(json.dumps({**result, "markdown": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
