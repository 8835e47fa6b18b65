"""The ``torch`` adapter: the reference pipeline (:class:`uniecg_edge.model.pipeline.TorchPipeline`) and its
modules on the checkpoint, fp32 on the CPU, decoding with the transformers KV cache as the reference does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .adapters import ADAPTERS, AdapterOptions, BackendAdapter, KvLayout, Patient, import_reason

if TYPE_CHECKING:
    from ..export.bundle import Bundle


@ADAPTERS.register("torch")
class TorchAdapter(BackendAdapter):
    """The torch reference pipeline on the checkpoint (fp32, CPU)."""

    name = "torch"
    needs_bundle = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        for module in ("torch", "transformers", "diffusers"):
            reason = import_reason(module, "pip install 'uniecg-edge[model]'")
            if reason:
                return reason
        return None

    @classmethod
    def precision_reason(cls, precision: str) -> str | None:
        if precision == "fp32":
            return None
        return (f"the torch reference pipeline runs fp32 only ({precision} runs on onnxruntime or tensorrt from "
                "an exported bundle)")

    def __init__(self, precision: str, bundle: Bundle | None, options: AdapterOptions) -> None:
        import torch

        from ..export.runtime_config import build_runtime_config
        from ..model.default import default_model_dir
        from ..model.pipeline import TorchPipeline
        from .ceiling import torch_weight_bytes

        torch.set_num_threads(options.threads)
        model_dir = options.model_dir or default_model_dir()
        self.pipeline = TorchPipeline.from_pretrained(model_dir)
        self.model = self.pipeline.model
        self.config = build_runtime_config(self.model)
        self.execution_provider = "torch-cpu"
        self.model_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        self.decoder_weight_bytes = torch_weight_bytes(self.model.llm)
        self.kv = KvLayout(self.config["num_layers"], self.config["num_kv_heads"], self.config["head_dim"], 4)
        self._prompt_ids = torch.tensor(self._ids(), dtype=torch.long)

    def _ids(self) -> list[list[int]]:
        tokenizer = self.model.tokenizer
        ids = list(tokenizer(self.model.config.prompt.interpret_prompt(), add_special_tokens=False)["input_ids"])
        if tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id, *ids]
        return [ids]

    @property
    def interpreter(self) -> Any:
        return self.pipeline

    def encode_ecg(self, ecg: np.ndarray) -> Any:
        import torch

        with torch.no_grad():
            return self.model.encode_ecg(torch.from_numpy(np.ascontiguousarray(ecg, np.float32)))

    def prompt(self, ecg: np.ndarray) -> Any:
        import torch

        from ..model.splice import splice_ecg_embeddings

        ids = self._prompt_ids
        with torch.no_grad():
            return splice_ecg_embeddings(ids, self.model.embed_tokens(ids), self.encode_ecg(ecg),
                                         self.model.ecg_token_id, torch.ones_like(ids))

    def context_length(self, prompt: Any) -> int:
        return int(prompt[1].shape[1])

    def prefill(self, prompt: Any) -> Any:
        import torch

        embeds, mask, positions = prompt
        with torch.no_grad():
            return self.model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)

    def prefill_token(self, prompt: Any) -> int:
        return int(self.prefill(prompt).logits[0, -1].argmax())

    def stepper(self, prompt: Any, max_steps: int) -> Callable[[], int]:
        import torch

        embeds, mask, positions = prompt
        out = self.prefill(prompt)
        length = mask.shape[1]
        full_mask = torch.ones((1, length + max_steps), dtype=torch.long)
        state = {"past": out.past_key_values, "next": int(out.logits[0, -1].argmax()), "steps": 0,
                 "position": int(positions[0, -1])}
        @torch.no_grad()
        def step() -> int:
            if state["steps"] >= max_steps:
                raise RuntimeError(f"stepper prepared for {max_steps} steps")
            state["steps"] += 1
            state["position"] += 1
            out = self.model.llm(inputs_embeds=self.model.embed_tokens(torch.tensor([[state["next"]]])),
                                 attention_mask=full_mask[:, :length + state["steps"]],
                                 position_ids=torch.tensor([[state["position"]]]), past_key_values=state["past"],
                                 use_cache=True)
            state["past"] = out.past_key_values
            state["next"] = int(out.logits[0, -1].argmax())
            return state["next"]

        return step

    def generation_step(self, states: np.ndarray, latent: np.ndarray, timestep: int, patient: Patient) -> Any:
        import torch

        def scalar(value: float) -> torch.Tensor:
            return torch.full((1, 1, 1), float(value))

        with torch.no_grad():
            cond = self.model.condition_from_states(torch.from_numpy(states))
            terms = self.model.unet.condition_terms(cond, scalar(patient.sex_code), scalar(patient.age),
                                                    scalar(patient.hr))
            return self.model.unet(torch.from_numpy(latent), torch.tensor([timestep]), terms)

    def vae_decode(self, latent: np.ndarray) -> Any:
        import torch

        with torch.no_grad():
            return self.model.decode_latents(torch.from_numpy(latent))

    def close(self) -> None:
        super().close()
        del self.pipeline, self.model
