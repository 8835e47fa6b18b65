"""The ``onnxruntime`` and ``tensorrt`` adapters: a bundle opened by the edge runtime (:mod:`uniecg_edge.runtime`):
its graphs, its KV-cache decoder, and ``EdgeRuntime`` for the whole pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendUnavailableError
from .adapters import ADAPTERS, AdapterOptions, BackendAdapter, KvLayout, Patient, import_reason

if TYPE_CHECKING:
    from ..export.bundle import Bundle


class RuntimeAdapter(BackendAdapter):
    """A bundle opened by the edge runtime on the backend called :attr:`name`."""

    def __init__(self, precision: str, bundle: Bundle | None, options: AdapterOptions) -> None:
        from ..runtime.backends import BACKENDS, BackendOptions
        from ..runtime.engine import EdgeRuntime
        from ..runtime.generation import embedder
        from ..runtime.prompt import interpret_prompt
        from .ceiling import onnx_weight_bytes

        if bundle is None:
            raise BackendUnavailableError(f"{self.name} needs an exported bundle")
        self.bundle = bundle
        self.config = dict(bundle.config)
        backend = BACKENDS.get(self.name)(bundle, BackendOptions(providers=options.providers,
                                                                 intra_op_threads=options.threads,
                                                                 model_dir=options.model_dir))
        self.runtime = EdgeRuntime(bundle, backend, backend_requested=self.name)
        self.backend = backend
        for graph in bundle.graph_names:  # open every graph now: opening is not part of any stage
            backend.graph(graph)
        self.execution_provider = str(backend.execution_provider)
        self.model_bytes = self._model_bytes()
        self.decoder_weight_bytes = onnx_weight_bytes(bundle.graph_path("decoder"))
        self.kv = KvLayout(int(self.config["num_layers"]), int(self.config["num_kv_heads"]),
                           int(self.config["head_dim"]), 4)
        self._prompt_ids = self.runtime.codec.encode(interpret_prompt(self.config["prompt"]))
        self._embed = embedder(backend.graph("embed_tokens"))
        self._prefill_decoder: tuple[int, Any] | None = None

    def _model_bytes(self) -> int:
        return int(sum(g.get("size_bytes", 0) for g in self.bundle.manifest["graphs"].values()))

    @property
    def interpreter(self) -> Any:
        return self.runtime

    def describe(self) -> dict[str, Any]:
        return dict(self.backend.describe())

    def _run(self, graph: str, *inputs: np.ndarray) -> list[np.ndarray]:
        from ..runtime.backends.base import call_positional

        return call_positional(self.backend.graph(graph), list(inputs))

    def encode_ecg(self, ecg: np.ndarray) -> Any:
        return self._run("ecg_encoder", np.ascontiguousarray(ecg, np.float32))[0]

    def prompt(self, ecg: np.ndarray) -> Any:
        from ..runtime.prompt import splice_ecg_embeddings

        (embeds,) = self._run("embed_tokens", self._prompt_ids)
        return splice_ecg_embeddings(self._prompt_ids, embeds, self.encode_ecg(ecg), int(self.config["ecg_token_id"]))

    def context_length(self, prompt: Any) -> int:
        return int(prompt[1].shape[1])

    def _decoder(self, max_total_tokens: int) -> Any:
        return self.backend.kv_decoder(self.backend.graph("decoder"), max_total_tokens)

    def prefill(self, prompt: Any) -> Any:
        """Through one cache-keeping decoder, reused while large enough (as ``EdgeRuntime`` does): device buffers
        are allocated once, not in every timed prefill."""
        capacity = self.context_length(prompt) + 1
        if self._prefill_decoder is None or self._prefill_decoder[0] < capacity:
            self._prefill_decoder = (capacity, self._decoder(capacity))
        return self._prefill_decoder[1].prefill(*prompt)

    def prefill_token(self, prompt: Any) -> int:
        logits, _ = self.prefill(prompt)
        return int(np.argmax(logits))

    def stepper(self, prompt: Any, max_steps: int) -> Callable[[], int]:
        embeds, mask, positions = prompt
        length = mask.shape[1]
        decoder = self._decoder(length + max_steps + 1)
        logits, _ = decoder.prefill(embeds, mask, positions)
        full_mask = np.ones((1, length + max_steps), np.int64)
        position = np.asarray([[int(positions[0, -1])]], np.int64)
        state = {"next": int(np.argmax(logits)), "steps": 0}

        def step() -> int:
            if state["steps"] >= max_steps:
                raise RuntimeError(f"stepper prepared for {max_steps} steps")
            state["steps"] += 1
            position[0, 0] += 1
            out, _ = decoder.step(self._embed(state["next"]), full_mask[:, :length + state["steps"]], position)
            state["next"] = int(np.argmax(out))
            return state["next"]

        return step

    def generation_step(self, states: np.ndarray, latent: np.ndarray, timestep: int, patient: Patient) -> Any:
        (cond,) = self._run("gen_head", states)
        scalar = np.ones((1, 1, 1), np.float32)
        terms = self._run("unet_cond", cond, scalar * patient.sex_code, scalar * patient.age, scalar * patient.hr)
        return self._run("unet", latent, np.asarray([timestep], np.int64), *terms)[0]

    def vae_decode(self, latent: np.ndarray) -> Any:
        return self._run("vae_decoder", latent)[0]

    def close(self) -> None:
        super().close()
        del self.runtime, self.backend, self._embed, self._prefill_decoder


@ADAPTERS.register("onnxruntime")
class OnnxRuntimeAdapter(RuntimeAdapter):
    name = "onnxruntime"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return import_reason("onnxruntime", "pip install onnxruntime (or onnxruntime-gpu on a GPU)")


@ADAPTERS.register("tensorrt")
class TensorRtAdapter(RuntimeAdapter):
    name = "tensorrt"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        from ..export.trt import detect_gpu, require_tensorrt

        try:
            require_tensorrt()
            detect_gpu()
        except BackendUnavailableError as exc:
            return str(exc)
        return None

    @classmethod
    def precision_reason(cls, precision: str) -> str | None:
        if precision == "int4":
            return "TensorRT engines are built from fp32, fp16 or int8 (QDQ) graphs; int4 MatMulNBits is onnxruntime's"
        return None

    @classmethod
    def bundle_reason(cls, bundle: Bundle) -> str | None:
        from ..runtime.backends.trt_backend import tensorrt_unavailable

        return tensorrt_unavailable(bundle)

    def _model_bytes(self) -> int:
        plans = list((self.bundle.root / "engines").glob("*/*.plan"))
        return int(sum(p.stat().st_size for p in plans)) or super()._model_bytes()
