"""Evaluate trained UniECG models on real records against issue 6's targets (student against teacher).

    OMP_NUM_THREADS=1 python benchmarks/eval_model.py --model /work/runs/student/model \
        --model /work/runs/teacher/model [--data ../shared/data/ecg] [--json eval.json] [--markdown eval.md] \
        [--gen-per-rate 3] [--sampler ddpm:1000] [--rates 50,60,...] [--limit N] [--reference-rr median|mean]
        [--device cpu|cuda] [--max-new-tokens N] [--no-progress]

For each model: the 25 CinC 2021 records (targets) and the extra held-out 12-lead records (listed separately):
NeuroKit2's reference heart rate on lead II, the report's DSP heart rate, the rate the model's text states and
its rhythm words against the ``# Dx`` labels; then generation control at 50..130 bpm with the model's own sampler
and each ``--sampler KIND:STEPS`` (e.g. ``ddpm:1000``, slow). With two or more models the one with the most
parameters is the teacher and the others are compared with it. Definitions and thresholds:
``uniecg_edge/training/real_eval.py`` (``TARGETS``). Prints the Markdown; exits 2 with one line when --data is
absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from uniecg_edge.training import real_eval  # noqa: E402


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _met(entry: dict[str, Any]) -> str:
    return {True: "met", False: "NOT met", None: "–"}[entry.get("met")]


def _fraction_cell(entry: dict[str, Any]) -> str:
    if entry["fraction"] is None:
        return "– (0 records)"
    return f"{100 * entry['fraction']:.1f} % ({entry['hits']}/{entry['n']})"


def model_markdown(result: dict[str, Any]) -> list[str]:
    t = real_eval.TARGETS
    lines = [f"## {result['model']} ({result['name']}, trained={result['trained']}, "
             f"grounded={result.get('grounded', False)}, "
             f"{result['parameters']['total']:,} parameters)", "",
             "| group | metric | value | target | |", "|---|---|---|---|---|"]
    names = {"hr_within_tolerance": f"DSP HR within {t.hr_tolerance_bpm:g} bpm of NeuroKit2",
             "hr_stated": "text states the HR",
             "stated_hr_within_tolerance": f"stated HR within {t.stated_tolerance_bpm:g} bpm (of stated)",
             "rhythm_agrees": "rhythm words agree with # Dx (labelled records)"}
    for group, summary in result["summary"].items():
        for key, name in names.items():
            entry = summary[key]
            lines.append(f"| {group} | {name} | {_fraction_cell(entry)} | >= {100 * entry['target']:.0f} % | "
                         f"{_met(entry) if group == real_eval.CINC else 'listed'} |")
        lines.append(f"| {group} | records / no reference / no rhythm label / failed | {summary['records']} / "
                     f"{summary['no_reference']} / {summary['no_rhythm_label']} / {len(summary['failed'])} | | |")
    for run in result["generation"]:
        entry, limb = run["hr_within_tolerance"], run["limb_relation"]
        lines.append(f"| generation {run['sampler']} ({run['unet_evaluations']} UNet evals) | HR within "
                     f"{entry['tolerance_bpm']:g} bpm of the request | {_fraction_cell(entry)} | "
                     f">= {100 * entry['target']:.0f} % | {_met(entry)} |")
        lines.append(f"| generation {run['sampler']} | max abs(III - (II - I)) in memory / written (mV) | "
                     f"{limb['max_error_mv']:.2e} / {limb['max_error_written_mv']:.2e} | "
                     f"<= {t.limb_memory_lsb:g} / {t.limb_written_lsb:g} LSB ({limb['lsb_mv']:g} mV) | {_met(limb)} |")
    if result["few_step"]:
        lines.append(_few_step_line(result["few_step"]))
    lines += ["", f"Reference: NeuroKit2 lead II, scored from the {result['reference_rr_statistic']} RR.", "",
              "| group | record | # Dx rhythm | ref HR (median / mean RR) | DSP HR | stated HR | model rhythm "
              "| DSP ok | stated ok | rhythm | error |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["records"]:
        lines.append(f"| {row['group']} | {row['record']} | {_fmt(row['expected_rhythm'])} | "
                     f"{_fmt(row['reference_hr_median_bpm'])} / {_fmt(row['reference_hr_mean_bpm'])} | "
                     f"{_fmt(row['measured_hr_bpm'])} | "
                     f"{_fmt(row['stated_hr_bpm'])} | {', '.join(row['model_rhythms']) or '–'} | "
                     f"{_fmt(row['hr_within'])} | "
                     f"{_fmt(row['stated_within'])} | {row['rhythm_verdict']} | {_fmt(row['error'])} |")
    return lines


def _few_step_line(check: dict[str, Any]) -> str:
    return (f"| generation | few-step {check['few_step']} against {check['reference']}: UNet evaluations ratio, "
            f"HR-control difference | {check['evaluation_ratio']:g}x, {_fmt(check['hr_control_points'])} points | "
            f">= {real_eval.TARGETS.few_step_evaluation_ratio:g}x, >= -{real_eval.TARGETS.few_step_points:g} "
            f"points | {_met(check)} |")


def comparison_markdown(comparison: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    t = real_eval.TARGETS
    totals = {r["model"]: r["parameters"]["total"] for r in results}
    lines = [f"## Students against the teacher {comparison['teacher']}", ""]
    for student in comparison["students"]:
        lines += [f"### {student['model']}", "", "| metric | teacher | student | points | target | |",
                  "|---|---|---|---|---|---|",
                  f"| parameters | {totals[comparison['teacher']]:,} | {totals[student['model']]:,} | "
                  f"{student['parameter_ratio']:g}x fewer | >= {t.student_parameter_ratio:g}x | "
                  f"{'met' if student['parameter_ratio_met'] else 'NOT met'} |"]
        for m in student["metrics"]:
            pct = [None if v is None else 100 * v for v in (m["teacher"], m["student"])]
            lines.append(f"| {m['metric']} | {_fmt(pct[0])} % | {_fmt(pct[1])} % | {_fmt(m['points'])} | "
                         f">= -{t.student_points:g} points | {_met(m)} |")
        if student["few_step"]:
            lines.append(_few_step_line(student["few_step"]).replace("| generation |", "| generation (teacher ref) |"))
        lines.append("")
    return lines


def markdown(results: list[dict[str, Any]], comparison: dict[str, Any] | None) -> str:
    lines = ["# UniECG evaluation on real records (issue 6)", ""]
    if comparison:
        lines += comparison_markdown(comparison, results)
    for result in results:
        lines += model_markdown(result) + [""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, type=Path, help="checkpoint folder (repeatable)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ecg")
    p.add_argument("--json", type=Path, default=None, help="write every row and summary here")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown tables here")
    p.add_argument("--gen-per-rate", type=int, default=3, help="seeds per requested rate (default 3)")
    p.add_argument("--sampler", action="append", default=[], metavar="KIND:STEPS",
                   help="extra sampler beside the model's own, e.g. ddim:8 or ddpm:1000 (repeatable)")
    p.add_argument("--rates", default=None, help="requested rates, comma-separated (default 50,60,...,130)")
    p.add_argument("--limit", type=int, default=None, help="at most N records (CinC first, then the extras)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="token limit of each report")
    p.add_argument("--reference-rr", choices=real_eval.RR_STATISTICS, default="mean",
                   help="NeuroKit2 reference rate from the mean RR (default: every beat counts) or the median RR")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--ungrounded", action="store_true",
                   help="interpret without the DSP's evidence line even where the model was trained to read it")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: real ECG records not found at {args.data} (pass --data)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    rates = None if args.rates is None else [float(r) for r in args.rates.split(",") if r.strip()]
    records = real_eval.find_records(args.data, args.limit)
    for sampler in args.sampler:
        real_eval.parse_sampler(sampler)  # a bad spelling fails before any model runs
    results = [real_eval.evaluate_model(
        model, records, samplers=args.sampler, per_rate=args.gen_per_rate, rates=rates,
        max_new_tokens=args.max_new_tokens, rr_statistic=args.reference_rr, device=args.device,
        show_progress=not args.no_progress, ungrounded=args.ungrounded)
        for model in args.model]
    comparison = real_eval.compare_models(results)
    text = markdown(results, comparison)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"data": str(args.data), "targets": asdict(real_eval.TARGETS), "models": results,
                   "comparison": comparison}
        args.json.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    from uniecg_edge.errors import UniEcgError

    try:
        sys.exit(main())
    except UniEcgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(int(exc.exit_code))
