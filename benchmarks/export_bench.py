"""Export time, graph sizes, onnxruntime CPU latency vs torch eager per graph, and decoder tokens/s.

For each precision (fp32, plus fp16 / int8 / int4 where ``uniecg_edge.export.quantize`` provides them) the model is
exported into a bundle, then every graph runs in onnxruntime on the real inputs of its parity check (batch 1,
the shipped record) and the same torch module runs eagerly on the same inputs. Latencies are medians of
``--repeats`` runs after ``--warmup`` runs, side by side in one process; tokens/s is a fixed-length greedy
loop (prefill of the ECG prompt, then ``--tokens`` decode steps with the KV cache, no early stop; median of 5).

    OMP_NUM_THREADS=1 python benchmarks/export_bench.py [--model DIR] [--precisions fp32,int8]
        [--threads 1] [--repeats 20] [--warmup 3] [--tokens 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from uniecg_edge.bench.timing import median_ms


def machine(threads: int) -> dict[str, Any]:
    from uniecg_edge.bench.machine import collect_machine

    return collect_machine(threads)


def available_precisions(requested: list[str] | None) -> list[str]:
    from uniecg_edge.errors import BackendUnavailableError
    from uniecg_edge.export.exporter import PRECISIONS, quantization_api

    out = []
    for precision in requested or list(PRECISIONS):
        try:
            quantization_api(precision)
        except BackendUnavailableError as exc:
            print(f"skipping {precision}: {exc}", file=sys.stderr)
            continue
        out.append(precision)
    return out


LOOPS = 5  # greedy loops per backend; tokens/s is their median


def greedy_tokens_per_s(step: Callable[[int, int], np.ndarray], prefill: Callable[[], tuple[np.ndarray, int]],
                        tokens: int, loops: int = LOOPS) -> float:
    """Median decode tokens/s of ``loops`` fixed-length greedy loops (after a short warm-up loop);
    ``prefill() -> (logits, last position)``, ``step(token, position) -> logits``. Prefill time is excluded."""
    rates = []
    for loop in range(loops + 1):
        logits, position = prefill()
        start = time.perf_counter()
        for _ in range(tokens if loop else 2):
            position += 1
            logits = step(int(np.argmax(logits[0, -1])), position)
        if loop:
            rates.append(tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def onnx_decode_speed(bundle: Path, real: Any, tokens: int, threads: int) -> float:
    from uniecg_edge.export.onnx_generate import GraphRunner, OnnxDecoder

    embed = GraphRunner.from_file(bundle / "embed_tokens.onnx", intra_op_threads=threads)
    decoder = OnnxDecoder(GraphRunner.from_file(bundle / "decoder.onnx", intra_op_threads=threads))
    embeds, mask, positions = real.prefill_inputs[:3]
    state: dict[str, Any] = {}

    def prefill() -> tuple[np.ndarray, int]:
        logits, _, state["past"] = decoder(embeds, mask, positions, decoder.empty_past(1))
        state["mask"] = mask
        return logits, int(positions[0, -1])

    def step(token: int, position: int) -> np.ndarray:
        state["mask"] = np.concatenate([state["mask"], np.ones((1, 1), np.int64)], axis=1)
        (step_embeds,) = embed(np.asarray([[token]], np.int64))
        logits, _, state["past"] = decoder(step_embeds, state["mask"], np.asarray([[position]], np.int64),
                                           state["past"])
        return logits

    return greedy_tokens_per_s(step, prefill, tokens)


def torch_decode_speed(model: Any, real: Any, tokens: int) -> float:
    import torch

    embeds, mask, positions = (torch.from_numpy(a) for a in real.prefill_inputs[:3])
    state: dict[str, Any] = {}

    @torch.no_grad()
    def prefill() -> tuple[np.ndarray, int]:
        out = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
        state["past"], state["mask"] = out.past_key_values, mask
        return out.logits.numpy(), int(positions[0, -1])

    @torch.no_grad()
    def step(token: int, position: int) -> np.ndarray:
        state["mask"] = torch.cat([state["mask"], torch.ones((1, 1), dtype=torch.long)], dim=1)
        out = model.llm(inputs_embeds=model.embed_tokens(torch.tensor([[token]])), attention_mask=state["mask"],
                        position_ids=torch.tensor([[position]]), past_key_values=state["past"], use_cache=True)
        state["past"] = out.past_key_values
        return out.logits.numpy()

    return greedy_tokens_per_s(step, prefill, tokens)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from uniecg_edge.data import EXAMPLE_RECORD
    from uniecg_edge.export.exporter import ExportOptions, export_bundle
    from uniecg_edge.export.onnx_generate import GraphRunner
    from uniecg_edge.export.parity import RealInputs, run_torch
    from uniecg_edge.export.spec import graph_specs
    from uniecg_edge.model.default import default_model_dir
    from uniecg_edge.model.uniecg import UniEcgModel
    from uniecg_edge.wfdb_io import read_record

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model) if args.model else default_model_dir()
    model = UniEcgModel.from_pretrained(model_dir)
    real = RealInputs(model, [read_record(EXAMPLE_RECORD)])
    specs = graph_specs()
    torch_ms: dict[tuple[str, str], float] = {}
    for spec in specs:
        module = spec.wrapper(model)
        for case, inputs in spec.real_inputs(real):
            torch_ms[spec.name, case] = median_ms(partial(run_torch, module, inputs), args.repeats, args.warmup)
    torch_tok_s = torch_decode_speed(model, real, args.tokens)

    rows: list[dict[str, Any]] = []
    context = int(real.prefill_inputs[0].shape[1])
    decode: list[dict[str, Any]] = [{"backend": "torch eager", "precision": "fp32", "context_tokens": context,
                                     "decode_tokens_per_s": torch_tok_s}]
    exports: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as scratch:
        for precision in available_precisions(args.precisions.split(",") if args.precisions else None):
            out = Path(scratch) / precision
            start = time.perf_counter()
            manifest = export_bundle(out, model_dir, ExportOptions(precision=precision))
            exports.append({"precision": precision, "export_s": time.perf_counter() - start,
                            "bundle_bytes": sum(g["size_bytes"] for g in manifest["graphs"].values()),
                            "greedy_tokens_equal": manifest["parity"]["greedy_tokens_equal"]})
            for spec in specs:
                graph = manifest["graphs"][spec.name]
                runner = GraphRunner.from_file(out / spec.file_name, intra_op_threads=args.threads)
                for case, inputs in spec.real_inputs(real):
                    ort_ms = median_ms(partial(runner, *inputs), args.repeats, args.warmup)
                    rows.append({"precision": precision, "graph": spec.name, "case": case,
                                 "size_bytes": graph["size_bytes"], "onnxruntime_ms": ort_ms,
                                 "torch_ms": torch_ms[spec.name, case],
                                 "speedup": torch_ms[spec.name, case] / ort_ms if ort_ms > 0 else None,
                                 "parity_error": graph["parity"][graph["parity"].get("metric", "max_abs_diff")]})
            tok_s = onnx_decode_speed(out, real, args.tokens, args.threads)
            decode.append({"backend": "onnxruntime CPU", "precision": precision, "context_tokens": context,
                           "decode_tokens_per_s": tok_s})
    return {"machine": machine(args.threads), "model": model.config.name, "model_dir": str(model_dir),
            "repeats": args.repeats, "warmup": args.warmup, "decode_tokens": args.tokens,
            "exports": exports, "graphs": rows, "decoder": decode}


def print_tables(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"# {result['model']} on {m['cpu']} ({m['cores']} cores, {m['threads']} thread(s)), "
          f"onnxruntime {m['onnxruntime']}, torch {m['torch']}; median of {result['repeats']} after "
          f"{result['warmup']} warm-up")
    print("\n| precision | export s | graphs MB | greedy = torch |\n|---|---|---|---|")
    for e in result["exports"]:
        print(f"| {e['precision']} | {e['export_s']:.1f} | {e['bundle_bytes'] / 1e6:.2f} | "
              f"{e['greedy_tokens_equal']} |")
    print("\n| precision | graph | case | size MB | ORT ms | torch ms | x faster | parity error |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in result["graphs"]:
        print(f"| {r['precision']} | {r['graph']} | {r['case']} | {r['size_bytes'] / 1e6:.2f} | "
              f"{r['onnxruntime_ms']:.3f} | {r['torch_ms']:.3f} | {r['speedup']:.1f} | {r['parity_error']:.2e} |")
    context = result["decoder"][0]["context_tokens"]
    print(f"\n| backend | precision | decode tokens/s ({result['decode_tokens']} tokens after a {context}-token "
          f"prefill, median of {LOOPS} loops) |\n|---|---|---|")
    for d in result["decoder"]:
        print(f"| {d['backend']} | {d['precision']} | {d['decode_tokens_per_s']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the package's default model)")
    parser.add_argument("--precisions", default=None, help="comma-separated (default: every available one)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32, help="decode steps of the tokens/s loop")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    result = bench(args)
    print_tables(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
