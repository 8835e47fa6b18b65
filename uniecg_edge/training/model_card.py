"""``MODEL_CARD.md`` of a shipped model, written from the files that describe how it was made and measured.

Every figure in the card is read from ``training_config.json``, ``metrics.json`` (the recipe's held-out synthetic
evaluation, or a distillation's metrics), ``distill_config.json`` and ``evaluation.json`` (the real-record
evaluation of ``benchmarks/eval_model.py``); nothing is typed in by hand.
"""

from __future__ import annotations

import json
from typing import Any

from .labels import ALL_LABELS

INTENDED_USE = (
    "Demonstration and testing of the uniecg-edge toolchain (export, quantisation, the live runtime on Jetson "
    "devices, benchmarks) with a model whose output is meaningful. **Not for clinical use**: it was trained only on "
    "simulated ECGs, it has not been validated clinically, and it must not inform any diagnosis or treatment."
)
LIMITATIONS = (
    "- Trained on simulated ECGs only (a 3-D dipole model with noise); real ECGs differ in morphology, noise and "
    "the mix of findings, so its text on real records is less accurate than on held-out simulated ones (see the "
    "real-record evaluation below).",
    "- It knows only the findings listed under Data; anything else (infarction, hypertrophy, pacing, "
    "paediatric ECGs, electrolyte effects) is outside what it has seen.",
    "- The report's measurements (rate, intervals, axis, quality) in `uniecg-edge` output come from the signal "
    "layer (DSP), not from this model; the model's text is checked against them (`evidence`) and disagreements "
    "are listed.",
    "- Generated ECGs are 10 s, 12 leads; III, aVR, aVL and aVF are derived from I and II.",
)
BEAT_CLOCK_LIMITATION = (
    "- The UNet places beats on a regular clock at the requested heart rate (`uniecg_edge.model.beat_clock`): "
    "generated rhythms are regular, so an atrial fibrillation request gets its morphology with regular RR intervals, "
    "and the beats of a given rate fall at the same times whatever the seed."
)

SWAP_LIMITATION = (
    "- Trained with the counterpart rhythm under the evidence line, the model calls sinus rhythm or atrial "
    "fibrillation from the DSP's measured RR regularity and P waves: where that measurement is wrong, the report is "
    "too, and the report's `discrepancies` cannot flag it (text and measurement agree)."
)


def _limitations(model: Any, stage1: dict[str, Any]) -> list[str]:
    return [*LIMITATIONS, *([BEAT_CLOCK_LIMITATION] if model.unet.config.beat_clock_harmonics else []),
            *([SWAP_LIMITATION] if model.config.grounded and (stage1.get("ground_swap_fraction") or 0) > 0 else [])]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] = ("", "")) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in rows]
    return lines


def _parameters(metrics: dict[str, Any]) -> list[str]:
    budget = metrics.get("parameter_budget") or {}
    params = budget.get("parameters") or {}
    if not params:
        return []
    rows = [(name, f"{count:,}") for name, count in params.items()]
    rows.append(("**total**", f"{budget.get('total_parameters', sum(params.values())):,}"))
    return ["## Architecture", "", *_table(rows, ("component", "parameters")), ""]


def _recipe(config: dict[str, Any], metrics: dict[str, Any], command: str | None) -> list[str]:
    if not config and not command:
        return []
    lines = ["## Recipe", ""]
    if command:
        lines += ["Reproduce with:", "", "```bash", command, "```", ""]
    if not config:
        return lines
    rows = [("preset", config.get("preset")), ("seed", config.get("seed")),
            ("stage 1 encoder steps", config.get("stage1", {}).get("encoder_steps")),
            ("stage 1 language steps", config.get("stage1", {}).get("steps")),
            ("stage 1 grounding steps (DSP evidence in the prompt)", config.get("stage1", {}).get("ground_steps")),
            ("share of grounding ECGs with a limb tremor", config.get("stage1", {}).get("ground_tremor_fraction")),
            ("share of grounding ECGs with reshaped P and T waves",
             config.get("stage1", {}).get("ground_morphology_fraction")),
            ("share of grounded prompts showing part of the ECG (the rest from the line)",
             config.get("stage1", {}).get("ground_partial_fraction")),
            ("share of grounded prompts showing the counterpart rhythm's ECG (rhythm from the line)",
             config.get("stage1", {}).get("ground_swap_fraction")),
            ("share of grounding sinus ECGs at a rate near 60 or 100 bpm",
             config.get("stage1", {}).get("ground_boundary_rate_fraction")),
            ("stage 2 VAE steps", config.get("vae", {}).get("steps")),
            ("stage 2 UNet steps", config.get("unet", {}).get("steps")),
            ("stage 2 [ECG]-token alignment steps", config.get("align", {}).get("steps")),
            ("shipped sampler", f"DDIM, {config.get('sampler_steps')} steps")]
    stage_seconds = [phase["seconds"] for stage in (metrics.get("stages") or {}).values()
                     for phase in stage.values() if isinstance(phase, dict) and "seconds" in phase]
    if stage_seconds:  # each phase's own clock, kept in its done.json: right for a run resumed in pieces too
        threads = metrics.get("torch_threads")
        rows.append(("training time", f"{sum(stage_seconds) / 60:.0f} min of training steps (all phases, data "
                     "simulation and evaluation aside) on the 2-core x86-64 development machine, "
                     + (f"resumed in parts (the last on {threads} torch thread(s))" if metrics.get("resumed")
                        else f"{threads} torch thread(s)")
                     + ("; the VAE and UNet trained in a second process beside stage 1 (`--jobs 2`)"
                        if metrics.get("jobs") == 2 else "")
                     + (f"; the run took {metrics['total_s'] / 60:.0f} min from start to end (data and evaluation "
                        "included)" if metrics.get("resumed") is False else "")))
    lines += _table([(k, v) for k, v in rows if v is not None], ("setting", "value"))
    return lines + [""]


def _synthetic_metrics(metrics: dict[str, Any]) -> list[str]:
    interpret = metrics.get("interpret") or {}
    if not interpret:
        return []
    rows: list[tuple[str, Any]] = [("reports evaluated", interpret.get("n"))]
    for key in ("heart_rate_bpm", "pr_ms", "qrs_ms", "qtc_ms", "axis_deg"):
        part = interpret.get(key) or {}
        if part.get("stated") is not None:
            rows.append((f"{key}: stated / within tolerance / mean abs error",
                         f"{part.get('stated')} / {_fmt(part.get('within_tolerance'))} / "
                         f"{_fmt(part.get('mean_abs_error'))}"))
    for key in ("rhythm_accuracy", "findings_micro_f1", "findings_exact_match", "ended_with_eos"):
        if key in interpret:
            rows.append((key, interpret[key]))
    generation = metrics.get("generation") or {}
    if generation:
        rows.append(("generation: heart-rate mean abs error (bpm)", generation.get("hr_mean_abs_error_bpm")))
    choice = metrics.get("choice") or {}
    if choice:
        rows.append(("emits the [ECG] tokens for a generate prompt", choice.get("emits_ecg_tokens")))
    heldout = metrics.get("heldout") or {}
    rows += [(f"held-out {k}", v) for k, v in heldout.items()]
    return ["## Held-out simulated ECGs (the recipe's evaluation)", "", *_table(rows, ("metric", "value")), ""]


REAL_ROWS = (("hr_within_tolerance", "DSP heart rate within {tolerance_bpm:g} bpm of the reference"),
             ("hr_stated", "the text states the heart rate"),
             ("stated_hr_within_tolerance", "stated heart rate within {tolerance_bpm:g} bpm of the reference"),
             ("rhythm_agrees", "rhythm words agree with the record's # Dx"))


def _score(entry: dict[str, Any]) -> str:
    verdict = "met" if entry.get("met") else "NOT met"
    return (f"{100 * entry['fraction']:.0f} % ({entry['hits']}/{entry['n']}); target {100 * entry['target']:.0f} %: "
            f"{verdict}")


def _real_metrics(evaluation: dict[str, Any]) -> list[str]:
    """The real-record evaluation (``benchmarks/eval_model.py`` JSON, first model) as a table."""
    models = evaluation.get("models") or []
    if not models:
        return []
    result = models[0]
    rows: list[tuple[str, Any]] = []
    for group, summary in (result.get("summary") or {}).items():
        for key, label in REAL_ROWS:
            entry = summary.get(key)
            if isinstance(entry, dict) and entry.get("n"):
                rows.append((f"{group}: {label.format(**entry) if '{' in label else label}", _score(entry)))
    for run in result.get("generation") or []:
        entry = run.get("hr_within_tolerance") or {}
        if entry.get("n"):
            rows.append((f"generation ({run['sampler']}, {run['unet_evaluations']} UNet evaluations): heart rate "
                         f"within {entry.get('tolerance_bpm', 10):g} bpm of the request, 50-130 bpm", _score(entry)))
        limb = run.get("limb_relation") or {}
        if limb:
            rows.append(("generation: max abs(III - (II - I)) in memory / written (mV)",
                         f"{limb.get('max_error_mv', float('nan')):.2g} / {limb.get('max_error_written_mv', 0):.2g}"))
    return ["## Real ECGs (`benchmarks/eval_model.py` on `../shared/data/ecg`; validation only, never trained on)",
            "", f"Reference heart rate: NeuroKit2 on lead II ({result.get('reference_rr_statistic')} RR). "
            "Per-record rows are in `evaluation.json`.", "", *_table(rows, ("metric", "value")), ""]


GROUNDING_AUGMENTATIONS = {  # Stage1Config field -> what its share of the grounding phase's examples shows
    "ground_tremor_fraction": "a limb tremor that looks like fibrillatory waves",
    "ground_morphology_fraction": "reshaped P and T waves",
    "ground_partial_fraction": "prompts that show part of the ECG beside the DSP's evidence line",
    "ground_swap_fraction": "prompts whose ECG shows the counterpart rhythm (sinus <-> atrial fibrillation) under "
                            "the original's evidence line and report",
    "ground_boundary_rate_fraction": "sinus rates near the 60 and 100 bpm limits",
}


def _grounding_augmentation(stage1: dict[str, Any]) -> str:
    used = [text for field, text in GROUNDING_AUGMENTATIONS.items() if (stage1.get(field) or 0) > 0]
    return f" (and, in the grounding phase, {', '.join(used)})" if used else ""


def _labels() -> str:
    return ", ".join(f"`{label}`" for label in ALL_LABELS)


def render_model_card(model: Any, side: dict[str, dict[str, Any]], *, weight_bytes: int,
                      recipe_command: str | None = None) -> str:
    """The card's Markdown for ``model`` (a UniEcgModel) and its side files (name -> parsed JSON)."""
    config = side.get("training_config.json", {})
    metrics = side.get("metrics.json", {})
    distill = side.get("distill_config.json", {})
    params = sum(p.numel() for p in model.parameters())
    lines = [f"# Model card: {model.config.name}", "",
             model.config.description, "",
             f"- Licence: {model.config.licence}",
             f"- Weights: {weight_bytes / 1e6:.1f} MB (fp32 safetensors), {params:,} parameters",
             f"- Sampler: {model.scheduler.kind}, {model.scheduler.num_inference_steps} steps",
             "- Grounded: " + ("yes: the interpretation prompt carries the DSP's measured rate, RR, RR irregularity "
                               "and P waves of the same ECG (`uniecg_edge.grounding`)" if model.config.grounded
                               else "no: the model reads the ECG alone"), "",
             "## Intended use", "", INTENDED_USE, "",
             "## Data", "",
             "Simulated 10 s, 500 Hz, 12-lead ECGs from the package's own generator (`uniecg_edge.synth`, drawn by "
             "`uniecg_edge.training.scenarios`), ages and both sexes, with baseline wander, mains, muscle and "
             "electrode-motion noise" + _grounding_augmentation(config.get("stage1", {})) + " "
             "and augmentation; each with an evidence-based report written from its "
             "ground truth (`uniecg_edge.training.reports`). Findings it covers: " + _labels() + ".",
             "The real records in `../shared/data/ecg` were used for validation only.", "",
             "## Limitations", "", *_limitations(model, config.get("stage1", {})), ""]
    lines += _parameters(metrics)
    lines += _recipe(config, metrics, recipe_command)
    if distill:
        lines += ["## Distillation", "", "```json", json.dumps(distill, indent=2), "```", ""]
    lines += _synthetic_metrics(metrics)
    lines += _real_metrics(side.get("evaluation.json", {}))
    return "\n".join(lines).rstrip() + "\n"
