"""The stages of the pipeline, timed on real ECG windows through one backend adapter.

======================  ===============================================================================================
stage                   what one timed run does
======================  ===============================================================================================
preprocess_dsp          host only (numpy / scipy, same for every backend): ``analyze_record`` (quality, R peaks,
                        measurements, rhythm, critical rules) + ``to_model_input`` of one 10 s window
ecg_encoder             ECG encoder + projector on one window (1, 12, 5000)
prefill                 the spliced interpretation prompt through the decoder with an empty KV cache
decode_token            one greedy token: embedding, decoder step against the KV cache, argmax (the cache grows
                        from the prompt's length, as in real decoding); ``tokens_per_s`` = 1000 / p50
time_to_first_token     encoder + token embeddings + splice + prefill + first argmax
full_report             the model's whole report for one window (``interpret``: input conversion, encoder, decoding
                        until end of sequence or the token limit, detokenisation, evidence check)
generation_step         generation head on the [ECG]-token states + UNet condition terms + one UNet step
full_generation         text -> ECG (``generate``): condition from the text, every scheduler step, VAE, resampling
vae_decode              VAE decoder: latent (1, 4, L) -> (1, 12, 1024)
end_to_end              window -> report: ``analyze_record`` then ``interpret`` with its measurements
======================  ===============================================================================================

Successive runs cycle through the windows, so every backend sees the same inputs in the same order.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..record import EcgRecord
from .adapters import BackendAdapter, Patient
from .ceiling import decoder_ceiling
from .timing import Timing, TimingConfig, measure

log = logging.getLogger(__name__)

STAGE_LABELS: dict[str, str] = {
    "preprocess_dsp": "preprocessing + DSP (host)",
    "ecg_encoder": "ECG encoder",
    "prefill": "prefill",
    "decode_token": "decode per token",
    "time_to_first_token": "time to first token",
    "full_report": "full report",
    "generation_step": "generation head + 1 UNet step",
    "full_generation": "full generation",
    "vae_decode": "VAE decode",
    "end_to_end": "end to end (window → report)",
}
HOST_BACKEND = "host"  # the backend name of the rows that do not depend on one (numpy / scipy)
WINDOW_S = 10.0
GENERATION_REQUEST = "sinus rhythm with a normal axis and no ST changes"


@dataclass
class StageInputs:
    """The real windows every backend is timed on, and the generation inputs derived from them."""

    windows: list[EcgRecord]
    ecgs: list[np.ndarray]  # (1, 12, 5000) per window
    patient: Patient
    seed: int = 0

    def cycle(self) -> Iterator[int]:
        return itertools.cycle(range(len(self.windows)))


def cut_windows(record: EcgRecord, max_windows: int, window_s: float = WINDOW_S) -> list[EcgRecord]:
    """Consecutive ``window_s`` windows of ``record`` (at least one; a short record gives itself)."""
    size = int(round(window_s * record.fs))
    count = max(1, min(max_windows, record.n_samples // size))
    out = []
    for i in range(count):
        part = record.signal[:, i * size:(i + 1) * size]
        out.append(EcgRecord(part, fs=record.fs, leads=record.leads, name=f"{record.name}[{i * window_s:g}s]",
                             meta=dict(record.meta)))
    return out


def load_inputs(records: Sequence[Path], windows_per_record: int = 1) -> StageInputs:
    """Windows from WFDB ``records``; the patient (heart rate by the DSP, age and sex from the header when given)."""
    from ..dsp import analyze_record
    from ..preprocess import to_model_input
    from ..wfdb_io import read_record

    windows: list[EcgRecord] = []
    for path in records:
        windows += cut_windows(read_record(path), windows_per_record)
    ecgs = [to_model_input(w)[0][None] for w in windows]
    first = windows[0]
    hr = analyze_record(first).measurements.heart_rate_bpm
    return StageInputs(windows=windows, ecgs=ecgs, patient=_patient(first.meta, hr))


def _patient(meta: dict[str, Any], hr: float | None) -> Patient:
    def number(*keys: str) -> float | None:
        for key in keys:
            try:
                return float(meta[key])
            except (KeyError, TypeError, ValueError):
                continue
        return None

    sex = str(meta.get("sex") or meta.get("Sex") or "M")[:1].upper()
    return Patient(hr=hr if hr else 72.0, age=number("age", "Age") or 60.0, sex=sex if sex in ("M", "F") else "M")


def timing_row(backend: str, precision: str, stage: str, timing: Timing, **extra: Any) -> dict[str, Any]:
    return {"backend": backend, "precision": precision, "stage": stage, "p50_ms": timing.p50_ms,
            "p95_ms": timing.p95_ms, "p99_ms": timing.p99_ms, "mean_ms": timing.mean_ms, "n": timing.n, **extra}


def host_rows(inputs: StageInputs, timing: TimingConfig) -> list[dict[str, Any]]:
    """The ``preprocess_dsp`` row: numpy / scipy only, measured once for all backends."""
    from ..dsp import analyze_record
    from ..preprocess import to_model_input

    order = inputs.cycle()

    def run() -> None:
        window = inputs.windows[next(order)]
        analyze_record(window)
        to_model_input(window)

    return [timing_row(HOST_BACKEND, "fp32", "preprocess_dsp", measure(run, timing))]


def _stage_calls(adapter: BackendAdapter, inputs: StageInputs, timing: TimingConfig
                 ) -> dict[str, Callable[[], Callable[[], object]]]:
    """Stage -> a function that prepares the stage (untimed) and returns the call to time."""
    from ..dsp import analyze_record

    def cycling(fn: Callable[[int], object]) -> Callable[[], Callable[[], object]]:
        def prepare() -> Callable[[], object]:
            order = inputs.cycle()
            return lambda: fn(next(order))
        return prepare

    def prefill() -> Callable[[], object]:
        prompt = adapter.prompt(inputs.ecgs[0])
        return lambda: adapter.prefill(prompt)

    def decode() -> Callable[[], object]:
        return adapter.stepper(adapter.prompt(inputs.ecgs[0]), timing.warmup + timing.repeats + 1)

    rng = np.random.default_rng(inputs.seed)
    cfg = adapter.config
    states = (rng.standard_normal((1, int(cfg["num_ecg_tokens"]), int(cfg["hidden_size"]))) * 0.5).astype(np.float32)
    latent = rng.standard_normal((1, int(cfg["latent_channels"]), int(cfg["latent_length"]))).astype(np.float32)
    patient = inputs.patient

    def end_to_end(i: int) -> object:
        window = inputs.windows[i]
        return adapter.interpret(window, base_report=analyze_record(window))

    return {
        "ecg_encoder": cycling(lambda i: adapter.encode_ecg(inputs.ecgs[i])),
        "prefill": prefill,
        "decode_token": decode,
        "time_to_first_token": cycling(lambda i: adapter.first_token(inputs.ecgs[i])),
        "full_report": cycling(lambda i: adapter.interpret(inputs.windows[i])),
        "generation_step": lambda: lambda: adapter.generation_step(states, latent, 999, patient),
        "full_generation": lambda: lambda: adapter.generate(GENERATION_REQUEST, patient),
        "vae_decode": lambda: lambda: adapter.vae_decode(latent),
        "end_to_end": cycling(end_to_end),
    }


def measure_adapter(adapter: BackendAdapter, precision: str, inputs: StageInputs, timing: TimingConfig,
                    progress: Callable[[str], None] | None = None, stages: Sequence[str] | None = None,
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time every stage of ``adapter``; rows and the combination's facts (decode tokens/s, TTFT, errors)."""
    say = progress or log.info
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    calls = _stage_calls(adapter, inputs, timing)
    context = adapter.context_length(adapter.prompt(inputs.ecgs[0]))
    for stage, prepare in calls.items():
        if stages is not None and stage not in stages:
            continue
        try:
            result = measure(prepare(), timing)
        except Exception as exc:  # noqa: BLE001 - one stage failing must not stop the others
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            errors[stage] = f"{type(exc).__name__}: {first}"
            say(f"  {stage}: failed ({errors[stage]})")
            continue
        extra: dict[str, Any] = {}
        if stage == "decode_token":
            extra = {"tokens_per_s": 1e3 / result.p50_ms, "context_tokens": context}
        elif stage in ("prefill", "time_to_first_token"):
            extra = {"context_tokens": context}
        rows.append(timing_row(adapter.name, precision, stage, result, **extra))
        say(f"  {STAGE_LABELS[stage]}: p50 {result.p50_ms:.3f} ms, p95 {result.p95_ms:.3f} ms (n={result.n})")
    by_stage = {r["stage"]: r for r in rows}
    facts: dict[str, Any] = {"context_tokens": context, "stage_errors": errors}
    if "decode_token" in by_stage:
        facts["decode_tokens_per_s"] = by_stage["decode_token"]["tokens_per_s"]
        # the cache grows during the timed steps: the ceiling is taken at the middle of them
        facts["decode_context_tokens"] = context + timing.warmup + by_stage["decode_token"]["n"] // 2
    if "time_to_first_token" in by_stage:
        facts["time_to_first_token_ms"] = by_stage["time_to_first_token"]["p50_ms"]
    if "end_to_end" in by_stage:
        facts["real_time_factor"] = by_stage["end_to_end"]["p50_ms"] / 1e3 / WINDOW_S
    return rows, facts


def ceiling_facts(adapter: BackendAdapter, facts: dict[str, Any], bandwidth_gb_s: float,
                  bandwidth_source: str) -> dict[str, Any]:
    """The decode ceiling of ``adapter`` at the context its decode steps ran at, and the fraction reached."""
    if "decode_tokens_per_s" not in facts:
        return {}
    context = int(facts["decode_context_tokens"])
    ceiling = decoder_ceiling(adapter.decoder_weight_bytes, adapter.kv.bytes_per_position() * context,
                              bandwidth_gb_s, bandwidth_source=bandwidth_source)
    return {"ceiling": {**ceiling.to_dict(), "context_tokens": context},
            "ceiling_fraction": ceiling.fraction(facts["decode_tokens_per_s"])}
