"""Reference inference in PyTorch: ``interpret(record) -> Report`` and ``generate(text, …) -> GeneratedEcg``.

This is the parity oracle for the exported graphs and the backend used when no bundle is given.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import ConfigError
from ..evidence import check_text
from ..grounding import ground
from ..leads import STANDARD_LEADS, derive_limb_leads
from ..preprocess import from_generator_space, to_model_input
from ..record import EcgRecord
from ..report import Report
from ..runtime.results import GeneratedEcg
from .decoding import DecodeResult, decode
from .schedulers import sample_latents
from .splice import splice_ecg_embeddings
from .uniecg import UniEcgModel, checkpoint_sha256

log = logging.getLogger(__name__)

SEX_CODES = {"M": 1.0, "F": 0.0}


class TorchPipeline:
    """Wraps a ``UniEcgModel`` with the prompt handling, decoding and diffusion loop."""

    def __init__(self, model: UniEcgModel, model_dir: str | os.PathLike[str] | None = None,
                 device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self._checksum: str | None = None

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike[str], device: str = "cpu") -> TorchPipeline:
        return cls(UniEcgModel.from_pretrained(model_dir), model_dir=model_dir, device=device)

    # ---- provenance ----------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        if self._checksum is None and self.model_dir is not None:
            self._checksum = checkpoint_sha256(self.model_dir)
        cfg = self.model.config
        return {
            "model": cfg.name,
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "model_sha256": self._checksum,
            "trained": cfg.trained,
            "bundle_sha256": None,
            "backend": "torch",
            "execution_provider": f"torch-{self.device}",
            "precision": "fp32",
            "package_version": __version__,
        }

    # ---- prompt → embeddings -------------------------------------------------------------------------------
    def _prompt_ids(self, prompt: str) -> torch.Tensor:
        ids = self.model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        bos = self.model.tokenizer.bos_token_id
        if bos is not None:
            ids = [bos] + list(ids)
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    def _decode_text(self, token_ids: list[int]) -> str:
        special = set(self.model.gen_token_ids) | {self.model.eos_token_id}
        text_ids = [t for t in token_ids if t not in special]
        return self.model.tokenizer.decode(text_ids, skip_special_tokens=True).strip()

    @torch.no_grad()
    def respond(self, prompt: str, ecg: np.ndarray | None = None, *, max_new_tokens: int | None = None,
                temperature: float = 0.0, seed: int = 0) -> tuple[DecodeResult, dict[str, float]]:
        """Decode an answer to ``prompt`` (with ``ecg`` (12, 5000) spliced at ``<ecg>`` when given)."""
        model = self.model
        timings: dict[str, float] = {}
        input_ids = self._prompt_ids(prompt)
        embeds = model.embed_tokens(input_ids)
        mask = torch.ones_like(input_ids)
        if ecg is not None:
            start = time.perf_counter()
            ecg_embeds = model.encode_ecg(torch.from_numpy(np.ascontiguousarray(ecg))[None].to(self.device))
            timings["ecg_encoder_s"] = time.perf_counter() - start
            embeds, mask, positions = splice_ecg_embeddings(input_ids, embeds, ecg_embeds, model.ecg_token_id, mask)
        else:
            positions = (torch.cumsum(mask, dim=1) - 1).clamp(min=0)
        result = decode(
            model.llm, embeds, mask, positions,
            max_new_tokens=max_new_tokens or model.config.max_new_tokens,
            eos_token_id=model.eos_token_id, gen_token_ids=model.gen_token_ids,
            temperature=temperature, seed=seed,
        )
        timings["prefill_s"] = result.prefill_s
        timings["decode_tokens"] = float(len(result.decode_s))
        timings["decode_per_token_s"] = float(np.median(result.decode_s)) if result.decode_s else 0.0
        return result, timings

    # ---- ECG → text ----------------------------------------------------------------------------------------
    def interpret(self, record: EcgRecord, *, question: str | None = None, max_new_tokens: int | None = None,
                  base_report: Report | None = None) -> Report:
        """The model's report for ``record`` beside the DSP measurements (``base_report``), with the evidence check."""
        ecg, derived = to_model_input(record)
        config = self.model.config
        if config.grounded:
            question, base_report = ground(record, base_report, config.prompt.interpret_question, question)
        prompt = config.prompt.interpret_prompt(question)
        start = time.perf_counter()
        result, timings = self.respond(prompt, ecg, max_new_tokens=max_new_tokens)
        timings["total_s"] = time.perf_counter() - start
        report = base_report or Report(record=record.name, fs=record.fs, leads=list(record.leads),
                                       duration_s=record.duration_s)
        report.text = self._decode_text(result.token_ids)
        report.claims, report.discrepancies = check_text(report.text, report.measurements, report.rhythm)
        report.provenance = {**report.provenance, **self.provenance(), "leads_derived": list(derived),
                             "stop_reason": result.stop_reason, "grounded": config.grounded,
                             "timings_s": {k: round(v, 6) for k, v in timings.items()}}
        return report

    # ---- text → ECG ----------------------------------------------------------------------------------------
    def condition_from_text(self, request: str, *, choose_tokens: int = 32) -> tuple[torch.Tensor, str, str]:
        """The condition vector for ``request``: the model's [ECG]-token states, forced if it does not emit them."""
        model = self.model
        prompt = model.config.prompt.generate_prompt(request)
        result, _ = self.respond(prompt, None, max_new_tokens=choose_tokens)
        text = self._decode_text(result.token_ids)
        if result.ecg_token_states is not None:
            return model.condition_from_states(result.ecg_token_states[None]), text, "emitted"
        log.info("the model did not emit the [ECG] tokens within %d tokens; appending them", choose_tokens)
        ids = self._prompt_ids(prompt)
        gen = torch.tensor([model.gen_token_ids], dtype=torch.long, device=self.device)
        ids = torch.cat([ids, gen], dim=1)
        out = model.llm(inputs_embeds=model.embed_tokens(ids), attention_mask=torch.ones_like(ids),
                        output_hidden_states=True)
        states = out.hidden_states[-1][:, -len(model.gen_token_ids):]
        return model.condition_from_states(states), text, "forced"

    @torch.no_grad()
    def generate(self, request: str, *, hr: float, age: float, sex: str, steps: int | None = None,
                 scheduler: str | None = None, seed: int = 0) -> GeneratedEcg:
        """A 10 s, 500 Hz, 12-lead ECG for ``request`` and the patient's heart rate, age and sex."""
        if sex not in SEX_CODES:
            raise ConfigError(f"sex must be M or F, got {sex!r}")
        model = self.model
        timings: dict[str, float] = {}
        start = time.perf_counter()
        cond, text, how = self.condition_from_text(request)
        timings["condition_s"] = time.perf_counter() - start

        def scalar(value: float) -> torch.Tensor:
            return torch.full((1, 1, 1), float(value), device=self.device)

        start = time.perf_counter()
        terms = model.unet.condition_terms(cond, scalar(SEX_CODES[sex]), scalar(age), scalar(hr))
        sched = model.scheduler
        if scheduler is not None or steps is not None:
            from dataclasses import replace

            sched = replace(sched, kind=scheduler or sched.kind,
                            num_inference_steps=steps or sched.num_inference_steps)
        latents = sample_latents(model.unet, terms, sched, batch=1, seed=seed, device=self.device)
        timings["diffusion_s"] = time.perf_counter() - start
        start = time.perf_counter()
        ecg_102 = model.decode_latents(latents)[0].cpu().numpy()
        timings["vae_decode_s"] = time.perf_counter() - start
        signal = from_generator_space(ecg_102)
        # III, aVR, aVL and aVF follow exactly from I and II: enforce the relation rather than trust the decoder.
        limb = derive_limb_leads(signal[0], signal[1])
        for name, values in limb.items():
            signal[STANDARD_LEADS.index(name)] = values
        record = EcgRecord(signal, fs=500.0, leads=STANDARD_LEADS, name="generated",
                           meta={"age": float(age), "sex": sex, "hr_requested": float(hr), "request": request})
        provenance = {**self.provenance(), "scheduler": sched.kind, "steps": sched.num_inference_steps,
                      "seed": seed, "ecg_tokens": how, "limb_leads": "derived from I and II"}
        return GeneratedEcg(record=record, text=text, ecg_tokens=how, steps=sched.num_inference_steps,
                            timings=timings, provenance=provenance)
