"""The benchmark's outputs: a JSON document for scripts and a Markdown report readable in the field.

JSON (``format`` ``uniecg-edge-bench``, ``format_version`` 1): ``machine`` (:mod:`.machine`), ``settings``,
``bandwidth``, ``combinations`` (one per backend x precision: status ``ok`` / ``skipped`` / ``failed`` with its
reason, execution provider, model bytes, peak memory, decode tokens/s, time to first token, real-time factor,
ceiling), ``rows`` (one per combination x stage: ``backend``, ``precision``, ``stage``, ``p50_ms``, ``p95_ms``,
``p99_ms``, ``n``; decode rows add ``tokens_per_s``), ``comparisons`` and, with ``--scale``, ``scale``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .machine import describe

BENCH_FORMAT = "uniecg-edge-bench"
BENCH_FORMAT_VERSION = 1


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    return out


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---- formatting helpers ------------------------------------------------------------------------------------------
def fmt_ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def fmt_num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"


def fmt_mb(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e6:,.2f}"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def combo_label(backend: str, precision: str) -> str:
    return f"{backend} {precision}"


# ---- sections ----------------------------------------------------------------------------------------------------
def _header(result: dict[str, Any]) -> list[str]:
    settings = result.get("settings", {})
    machine = result.get("machine", {})
    bandwidth = result.get("bandwidth") or {}
    load = machine.get("load_average") or {}
    after = result.get("load_average_after") or {}
    lines = [f"# uniecg-edge bench: {result.get('model', {}).get('name', '?')}", ""]
    lines.append(f"- machine: {describe(machine)}")
    lines.append(f"- load average (1 min) before / after: {load.get('1min', '–')} / {after.get('1min', '–')} "
                 "(other processes on the machine share the cores)")
    if bandwidth:
        after = (result.get("bandwidth_after") or {}).get("gb_per_s")
        drift = f"; {after:.1f} GB/s at the end of the run" if after else ""
        lines.append(f"- memory bandwidth for the ceilings: {bandwidth['gb_per_s']:.1f} GB/s ({bandwidth['source']}"
                     f"{drift})")
    records = ", ".join(settings.get("records", [])) or "?"
    lines.append(f"- input: {settings.get('windows', '?')} real 10 s ECG window(s) from {records}; "
                 f"{settings.get('warmup', '?')} warm-up + up to {settings.get('repeats', '?')} timed runs per stage; "
                 f"{settings.get('threads', '?')} CPU thread(s) ({settings.get('threads_reason') or 'as given'})")
    return lines


def _stage_table(result: dict[str, Any]) -> list[str]:
    from .stages import HOST_BACKEND, STAGE_LABELS

    rows = result.get("rows", [])
    lines = ["", "## Stages", ""]
    for row in rows:
        if row["backend"] == HOST_BACKEND:
            lines.append(f"- {STAGE_LABELS.get(row['stage'], row['stage'])}, the same for every backend: "
                         f"p50 {fmt_ms(row['p50_ms'])} / p95 {fmt_ms(row['p95_ms'])} / p99 {fmt_ms(row['p99_ms'])} ms "
                         f"(n={row['n']})")
    combos = [c for c in result.get("combinations", []) if c.get("status") == "ok"]
    if not combos:
        return [*lines, "", "No combination ran (see the skipped list)."]
    by_key = {(r["backend"], r["precision"], r["stage"]): r for r in rows}
    stages = [s for s in STAGE_LABELS if any(r["stage"] == s and r["backend"] != HOST_BACKEND for r in rows)]
    body = []
    for stage in stages:
        cells = [STAGE_LABELS[stage]]
        for c in combos:
            row = by_key.get((c["backend"], c["precision"], stage))
            cells.append("–" if row is None else
                         f"{fmt_ms(row['p50_ms'])} / {fmt_ms(row['p95_ms'])} / {fmt_ms(row['p99_ms'])}")
        body.append(cells)
    header = ["stage: p50 / p95 / p99 ms", *(combo_label(c["backend"], c["precision"]) for c in combos)]
    if len(lines) > 3:
        lines.append("")
    return [*lines, *table(header, body)]


def _summary_table(result: dict[str, Any]) -> list[str]:
    rows = []
    for c in result.get("combinations", []):
        if c.get("status") != "ok":
            continue
        ceiling = c.get("ceiling") or {}
        fraction = c.get("ceiling_fraction")
        rows.append([
            c["backend"], c["precision"], c.get("execution_provider", "–"),
            fmt_num(c.get("decode_tokens_per_s"), 0), fmt_ms(c.get("time_to_first_token_ms")),
            fmt_num(c.get("real_time_factor"), 3), fmt_num(c.get("peak_rss_mb"), 0),
            fmt_num(c.get("gpu_memory_mb"), 0), fmt_mb(c.get("model_bytes")),
            fmt_num(ceiling.get("ceiling_tokens_per_s"), 0),
            "–" if fraction is None else f"{100 * fraction:.1f} %",
        ])
    if not rows:
        return []
    header = ["backend", "precision", "runs on", "decode tok/s", "TTFT ms", "RTF", "peak RSS MB", "GPU MB",
              "model MB", "ceiling tok/s", "of ceiling"]
    notes = ["", "RTF: end-to-end time for one window / window length (below 1 keeps up with the signal). "
             "Ceiling: bandwidth / bytes read per token (decoder weights + KV cache at the prompt's context)."]
    return ["", "## Per combination", "", *table(header, rows), *notes]


def _skipped(result: dict[str, Any]) -> list[str]:
    lines = [f"- {c['backend']} {c['precision']}: {c['status']}: {c.get('reason', '')}"
             for c in result.get("combinations", []) if c.get("status") != "ok"]
    return ["", "## Skipped or failed", "", *lines] if lines else []


def _comparisons(result: dict[str, Any]) -> list[str]:
    lines = []
    for item in (result.get("comparisons") or {}).values():
        if item.get("value") is None:
            continue
        fraction = item.get("unit") == "fraction"
        value = f"{100 * item['value']:.1f} %" if fraction else f"{item['value']:.2f}x"
        target = ""
        if item.get("target") is not None:
            goal = f"{100 * item['target']:g} %" if fraction else f"{item['target']:g}x"
            target = f" (target ≥ {goal}: {'met' if item.get('passed') else 'NOT met'})"
        lines.append(f"- {item['label']}: **{value}**{target}")
    return ["", "## Comparisons", "", *lines] if lines else []


def _scale(result: dict[str, Any]) -> list[str]:
    scale = result.get("scale")
    if not scale:
        return []
    lines = ["", "## Scale", ""]
    bandwidth = scale.get("bandwidth_gb_s")
    if bandwidth:
        lines.append(f"Ceiling from {bandwidth:.1f} GB/s ({scale.get('bandwidth_source', 'measured')}); decode steps "
                     "against a fixed random KV cache of the given context; random-weight decoders.")
        lines.append("")
    sizes = scale.get("model_size") or []
    if sizes:
        lines += ["### Decode vs model size", ""]
        lines += table(["decoder", "params", "backend", "precision", "weights MB", "context", "tok/s", "p95 ms",
                        "ceiling tok/s", "of ceiling", "peak RSS MB"],
                       [[r["decoder"], f"{r['params'] / 1e6:,.1f} M", r["backend"], r["precision"],
                         fmt_mb(r.get("weight_bytes")), r["context"], fmt_num(r["tokens_per_s"]),
                         fmt_ms(r["p95_ms"]), fmt_num(r.get("ceiling_tokens_per_s")),
                         _pct(r.get("ceiling_fraction")), fmt_num(r.get("peak_rss_mb"), 0)] for r in sizes])
        lines.append("")
    sweeps = (("context", "Decode vs context length", "context"), ("batch", "Decode vs batch", "batch"))
    for key, title, column in sweeps:
        rows = scale.get(key) or []
        if rows:
            lines += [f"### {title}", ""]
            lines += table(["decoder", "backend", "precision", column, "step p50 ms", "tok/s (all sequences)",
                            "ceiling tok/s", "of ceiling"],
                           [[r["decoder"], r["backend"], r["precision"], r[column], fmt_ms(r["p50_ms"]),
                             fmt_num(r["tokens_per_s"]), fmt_num(r.get("ceiling_tokens_per_s")),
                             _pct(r.get("ceiling_fraction"))] for r in rows])
            lines.append("")
    steps = scale.get("steps") or []
    if steps:
        lines += ["### Generation vs scheduler steps", ""]
        lines += table(["backend", "precision", "scheduler", "steps", "generation p50 ms", "p95 ms", "per step ms"],
                       [[r["backend"], r["precision"], r["scheduler"], r["steps"], fmt_ms(r["p50_ms"]),
                         fmt_ms(r["p95_ms"]), fmt_ms(r.get("per_step_ms"))] for r in steps])
        lines.append("")
    for note in scale.get("skipped") or []:
        lines.append(f"- skipped: {note}")
    return lines


def _pct(fraction: float | None) -> str:
    return "–" if fraction is None else f"{100 * fraction:.1f} %"


def markdown(result: dict[str, Any]) -> str:
    """The Markdown report of a benchmark result (see the module docstring)."""
    lines = _header(result)
    if result.get("combinations"):
        lines += _stage_table(result) + _summary_table(result) + _comparisons(result) + _skipped(result)
    else:
        lines += _comparisons(result)
    lines += _scale(result)
    return "\n".join(lines).rstrip() + "\n"
