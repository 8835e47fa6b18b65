"""``EdgeRuntime``: an edge bundle on a backend, with the torch pipeline's ``interpret`` and ``generate``.

::

    runtime = EdgeRuntime.from_bundle("bundle/", backend="auto")        # verifies every file's sha256
    report = runtime.interpret(record, base_report=analyze_record(record))
    ecg = runtime.generate("sinus rhythm", hr=70, age=50, sex="F", steps=8, scheduler="dpmsolver++")

The Report contract is :class:`uniecg_edge.model.pipeline.TorchPipeline`'s (text, claims, discrepancies,
provenance); the provenance adds the bundle checksum, the backend, the execution provider that really ran, the
precision and the timings. With the onnxruntime or tensorrt backend nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import BundleError
from ..evidence import check_text
from ..grounding import ground
from ..preprocess import to_model_input
from ..record import EcgRecord
from ..report import Report
from .backends import AUTO, Backend, BackendOptions, choose_backend
from .diffusion import generated_record, patient_inputs, run_diffusion
from .generation import DecodeResult, DecoderGraph, SamplingConfig, decode_tokens, embedder
from .graph import KvDecoder
from .prompt import TOKENIZER_FILE, PromptCodec, generate_prompt, interpret_prompt, splice_ecg_embeddings
from .results import GeneratedEcg
from .schedulers import SCHEDULER_FILE, SamplerConfig, load_sampler_config

log = logging.getLogger(__name__)

UNDERSTANDING_GRAPHS = ("ecg_encoder", "embed_tokens", "decoder")
GENERATION_GRAPHS = ("gen_head", "unet_cond", "unet", "vae_decoder")
CHOOSE_TOKENS = 32  # tokens the model may say before it emits the [ECG] tokens (as the torch pipeline)


class EdgeRuntime:
    """One verified bundle on one backend; graphs open on first use."""

    def __init__(self, bundle: Any, backend: Backend, *, backend_requested: str = AUTO,
                 backend_notes: Sequence[str] = ()) -> None:
        self.bundle = bundle
        self.backend = backend
        self.config: dict[str, Any] = dict(bundle.config)
        self.backend_requested = backend_requested
        self.backend_notes = list(backend_notes)
        self.gen_token_ids = [int(t) for t in self.config["gen_token_ids"]]
        self.eos_token_id = int(self.config["eos_token_id"])
        self.codec = PromptCodec(bundle.tokenizer_dir / TOKENIZER_FILE, self.config.get("bos_token_id"),
                                 hidden_token_ids=[*self.gen_token_ids, self.eos_token_id])
        self._kv: tuple[int, KvDecoder] | None = None

    @classmethod
    def from_bundle(cls, directory: str | os.PathLike[str], backend: str = AUTO,
                    providers: Sequence[str] | None = None, *, model_dir: str | os.PathLike[str] | None = None,
                    allow_fallback: bool | None = None, intra_op_threads: int | None = None,
                    io_binding: bool | None = None, device_id: int = 0) -> EdgeRuntime:
        """Open ``directory`` (every checksum verified) on ``backend`` (``auto`` | ``onnxruntime`` | ``tensorrt`` |
        ``torch``); ``providers`` are onnxruntime execution providers (``cpu``, ``cuda``, ``tensorrt`` or full
        names). Errors are one line: ``BundleError`` (exit 2) for a bad bundle, ``BackendUnavailableError``."""
        from ..export.bundle import load_bundle

        bundle = load_bundle(directory)
        options = BackendOptions(providers=tuple(providers) if providers else None, allow_fallback=allow_fallback,
                                 intra_op_threads=intra_op_threads, io_binding=io_binding,
                                 model_dir=Path(model_dir) if model_dir is not None else None, device_id=device_id)
        chosen, notes = choose_backend(bundle, backend, options)
        return cls(bundle, chosen, backend_requested=backend, backend_notes=notes)

    # ---- provenance ----------------------------------------------------------------------------------------
    @cached_property
    def bundle_sha256(self) -> str:
        return str(self.bundle.sha256())

    @cached_property
    def sampler_config(self) -> SamplerConfig:
        path = self.bundle.root / SCHEDULER_FILE
        if not path.is_file():
            raise BundleError(f"{self.bundle.root}: no {SCHEDULER_FILE} (the sampler config of the bundle)")
        return load_sampler_config(path)

    def provenance(self) -> dict[str, Any]:
        source = self.bundle.manifest.get("source_model") or {}
        details = {k: v for k, v in self.backend.describe().items() if k not in ("backend", "execution_provider")}
        return {
            "model": self.config.get("name") or source.get("name"),
            "model_dir": None,
            "model_sha256": source.get("sha256"),
            "trained": bool(self.config.get("trained", source.get("trained", False))),
            "bundle": str(self.bundle.root),
            "bundle_sha256": self.bundle_sha256,
            "backend": self.backend.name,
            "backend_requested": self.backend_requested,
            "execution_provider": self.backend.execution_provider,
            "precision": self.bundle.precision,
            "package_version": __version__,
            "backend_details": details,
            "backend_notes": list(self.backend_notes),
        }

    # ---- prompt -> tokens ----------------------------------------------------------------------------------
    def warmup(self, graphs: Sequence[str] = UNDERSTANDING_GRAPHS) -> None:
        """Open ``graphs`` now (sessions / engines, provider checks) instead of on first use."""
        for name in graphs:
            self.backend.graph(name)

    def _kv_decoder(self, capacity: int) -> KvDecoder:
        """The backend's cache-keeping decoder, reused while it is large enough (device buffers allocated once)."""
        if self._kv is None or self._kv[0] < capacity:
            self._kv = (capacity, self.backend.kv_decoder(self.backend.graph("decoder"), capacity))
        return self._kv[1]

    def _embed_prompt(self, prompt_ids: np.ndarray) -> np.ndarray:
        return self.backend.graph("embed_tokens").run({"input_ids": prompt_ids})["inputs_embeds"]

    def respond(self, prompt: str, ecg: np.ndarray | None = None, *, max_new_tokens: int | None = None,
                sampling: SamplingConfig | None = None, stop_token_ids: Sequence[int] = ()
                ) -> tuple[DecodeResult, dict[str, float]]:
        """Decode an answer to ``prompt`` (with ``ecg`` (12, 5000) spliced at ``<ecg>`` when given)."""
        timings: dict[str, float] = {}
        prompt_ids = self.codec.encode(prompt)
        embeds = self._embed_prompt(prompt_ids)
        if ecg is not None:
            start = time.perf_counter()
            ecg_in = np.ascontiguousarray(ecg, np.float32)[None]
            ecg_embeds = self.backend.graph("ecg_encoder").run({"ecg": ecg_in})["ecg_embeds"]
            timings["ecg_encoder_s"] = time.perf_counter() - start
            embeds, mask, positions = splice_ecg_embeddings(prompt_ids, embeds, ecg_embeds,
                                                            int(self.config["ecg_token_id"]))
        else:
            mask = np.ones(prompt_ids.shape, np.int64)
            positions = np.arange(prompt_ids.shape[1], dtype=np.int64)[None]
        limit = int(max_new_tokens or self.config["max_new_tokens"])
        decoder = self._kv_decoder(mask.shape[1] + limit + len(self.gen_token_ids) + 1)
        result = decode_tokens(decoder, embedder(self.backend.graph("embed_tokens")), embeds, mask, positions,
                               max_new_tokens=limit, eos_token_id=self.eos_token_id,
                               gen_token_ids=self.gen_token_ids, stop_token_ids=stop_token_ids, sampling=sampling)
        timings["prefill_s"] = result.prefill_s
        timings["decode_tokens"] = float(len(result.decode_s))
        timings["decode_per_token_s"] = float(np.median(result.decode_s)) if result.decode_s else 0.0
        return result, timings

    # ---- ECG -> text ---------------------------------------------------------------------------------------
    def interpret(self, record: EcgRecord, base_report: Report | None = None, *, question: str | None = None,
                  max_new_tokens: int | None = None, sampling: SamplingConfig | None = None) -> Report:
        """The model's report for ``record`` beside the DSP measurements (``base_report``), with the evidence check."""
        ecg, derived = to_model_input(record)
        grounded = bool(self.config.get("grounded", False))
        if grounded:
            question, base_report = ground(record, base_report, self.config["prompt"]["interpret_question"],
                                           question)
        start = time.perf_counter()
        result, timings = self.respond(interpret_prompt(self.config["prompt"], question), ecg,
                                       max_new_tokens=max_new_tokens, sampling=sampling)
        timings["total_s"] = time.perf_counter() - start
        report = base_report or Report(record=record.name, fs=record.fs, leads=list(record.leads),
                                       duration_s=record.duration_s)
        report.text = self.codec.decode(result.token_ids)
        report.claims, report.discrepancies = check_text(report.text, report.measurements, report.rhythm)
        report.provenance = {**report.provenance, **self.provenance(), "leads_derived": list(derived),
                             "stop_reason": result.stop_reason, "grounded": grounded,
                             "sampling": dataclasses.asdict(sampling or SamplingConfig()),
                             "timings_s": {k: round(v, 6) for k, v in timings.items()}}
        return report

    # ---- text -> ECG ---------------------------------------------------------------------------------------
    def condition_states(self, request: str, *, choose_tokens: int = CHOOSE_TOKENS) -> tuple[np.ndarray, str, str]:
        """(K, H) [ECG]-token states for ``request``, the model's text, and "emitted" or "forced" (the tokens
        appended after the prompt when the model did not emit them within ``choose_tokens``)."""
        prompt = generate_prompt(self.config["prompt"], request)
        result, _ = self.respond(prompt, None, max_new_tokens=choose_tokens)
        text = self.codec.decode(result.token_ids)
        if result.ecg_token_states is not None:
            return result.ecg_token_states, text, "emitted"
        log.info("the model did not emit the [ECG] tokens within %d tokens; appending them", choose_tokens)
        ids = np.concatenate([self.codec.encode(prompt), np.asarray([self.gen_token_ids], np.int64)], axis=1)
        decoder = DecoderGraph(self.backend.graph("decoder"))
        mask = np.ones(ids.shape, np.int64)
        positions = np.arange(ids.shape[1], dtype=np.int64)[None]
        _, hidden, _ = decoder(self._embed_prompt(ids), mask, positions, decoder.empty_past(1))
        return np.asarray(hidden[0, -len(self.gen_token_ids):], np.float32), text, "forced"

    def generate(self, request: str, *, hr: float, age: float, sex: str, steps: int | None = None,
                 scheduler: str | None = None, seed: int = 0) -> GeneratedEcg:
        """A 10 s, 500 Hz, 12-lead ECG for ``request`` and the patient's heart rate, age and sex."""
        patient = patient_inputs(hr, age, sex)
        sampler = dataclasses.replace(self.sampler_config, kind=scheduler or self.sampler_config.kind,
                                      num_inference_steps=steps or self.sampler_config.num_inference_steps)
        graphs = {name: self.backend.graph(name) for name in GENERATION_GRAPHS}
        timings: dict[str, float] = {}
        started = time.perf_counter()
        states, text, how = self.condition_states(request)
        timings["condition_s"] = time.perf_counter() - started
        diffusion = run_diffusion(graphs, states, patient, sampler, seed)
        timings.update(diffusion.timings)
        start = time.perf_counter()
        record = generated_record(diffusion.ecg_102, {"age": float(age), "sex": sex, "hr_requested": float(hr),
                                                      "request": request})
        timings["resample_s"] = time.perf_counter() - start
        timings["total_s"] = time.perf_counter() - started
        provenance = {**self.provenance(), "scheduler": sampler.kind, "steps": sampler.num_inference_steps,
                      "seed": seed, "ecg_tokens": how, "limb_leads": "derived from I and II"}
        return GeneratedEcg(record=record, text=text, ecg_tokens=how, steps=sampler.num_inference_steps,
                            timings=timings, provenance=provenance)


InferenceSession = EdgeRuntime
