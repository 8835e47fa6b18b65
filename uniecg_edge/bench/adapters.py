"""One small adapter per backend: the pipeline's steps as calls the stage timer can repeat.

An adapter opens one backend at one precision and offers the same primitives whatever runs underneath:
``encode_ecg``, ``prompt`` (encoder + token embeddings + splice), ``prefill``, ``first_token``, a greedy decode
``stepper``, ``generation_step`` (generation head + UNet condition terms + one UNet step), ``vae_decode``, and the
whole ``interpreter`` (``interpret(record)`` / ``generate(request, ...)``, the protocol of
:mod:`uniecg_edge.runtime.live.interpreter`). Adapters register by backend name in :data:`ADAPTERS`.

* ``torch`` (:mod:`.torch_adapter`): the reference, :class:`uniecg_edge.model.pipeline.TorchPipeline` and its
  modules, with the transformers KV cache (fp32; the pipeline has no fp16 or int8 path).
* ``onnxruntime`` / ``tensorrt`` (:mod:`.runtime_adapter`): a bundle opened by the edge runtime
  (:mod:`uniecg_edge.runtime`): its graphs, its KV-cache decoder, and ``EdgeRuntime`` for the whole pipeline.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..registry import Registry

if TYPE_CHECKING:
    from ..export.bundle import Bundle
    from ..record import EcgRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterOptions:
    """How adapters open their backend: CPU threads, the torch checkpoint, onnxruntime providers."""

    threads: int = 1
    model_dir: Path | None = None  # torch: None = the default model
    providers: tuple[str, ...] | None = None  # onnxruntime: None = the runtime's choice (fastest available)


@dataclass(frozen=True)
class KvLayout:
    """What one cached position costs: layers x (key + value) x KV heads x head width x bytes."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype_bytes: int = 4

    def bytes_per_position(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes


@dataclass(frozen=True)
class Patient:
    """Conditioning of the generation stages (from the window's record and its DSP heart rate)."""

    hr: float = 72.0
    age: float = 60.0
    sex: str = "M"

    @property
    def sex_code(self) -> float:
        return 1.0 if self.sex == "M" else 0.0


class BackendAdapter(abc.ABC):
    """One backend at one precision; see the module docstring for the primitives."""

    name: ClassVar[str]
    needs_bundle: ClassVar[bool] = True

    execution_provider: str = "?"
    model_bytes: int = 0  # what the backend loads: graph files, engines, or the parameters
    decoder_weight_bytes: int = 0  # bytes of decoder weights read per generated token
    kv: KvLayout
    config: dict[str, Any]  # the bundle's runtime config keys (num_ecg_tokens, hidden_size, latent shape, ...)
    closed: bool = False

    @abc.abstractmethod
    def __init__(self, precision: str, bundle: Bundle | None, options: AdapterOptions) -> None:
        """Open the backend at ``precision`` on ``bundle`` (``None`` for backends that run the checkpoint)."""

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run on this machine at all (``None``: it can)."""
        return None

    @classmethod
    def precision_reason(cls, precision: str) -> str | None:
        """Why this backend cannot run ``precision`` here (``None``: it can)."""
        return None

    @classmethod
    def bundle_reason(cls, bundle: Bundle) -> str | None:
        """Why this backend cannot run ``bundle`` (checked after the bundle is verified); ``None``: it can."""
        return None

    # ---- understanding ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode_ecg(self, ecg: np.ndarray) -> Any:
        """(1, 12, 5000) -> ECG embeddings."""

    @abc.abstractmethod
    def prompt(self, ecg: np.ndarray) -> Any:
        """The interpretation prompt with the ECG spliced in: what :meth:`prefill` takes."""

    @abc.abstractmethod
    def prefill(self, prompt: Any) -> Any:
        """The prompt through the decoder with an empty cache."""

    @abc.abstractmethod
    def context_length(self, prompt: Any) -> int:
        """Positions in ``prompt`` (the KV cache length after its prefill)."""

    @abc.abstractmethod
    def stepper(self, prompt: Any, max_steps: int) -> Callable[[], int]:
        """Prefill ``prompt``; each call of the result decodes one more greedy token (embedding, decoder step,
        argmax) against the growing cache and returns its id. At most ``max_steps`` calls."""

    def first_token(self, ecg: np.ndarray) -> int:
        """Time to first token: encoder, embeddings, splice, prefill and the first argmax."""
        return self.prefill_token(self.prompt(ecg))

    @abc.abstractmethod
    def prefill_token(self, prompt: Any) -> int:
        """Prefill and pick the first token."""

    # ---- generation ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def generation_step(self, states: np.ndarray, latent: np.ndarray, timestep: int, patient: Patient) -> Any:
        """(1, K, H) [ECG]-token states -> generation head -> UNet condition terms -> one UNet step."""

    @abc.abstractmethod
    def vae_decode(self, latent: np.ndarray) -> Any:
        """(1, 4, L) latent -> (1, 12, 1024) ECG."""

    # ---- the whole pipeline ----------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def interpreter(self) -> Any:
        """``interpret(record, base_report=...)`` and ``generate(request, hr=, age=, sex=, steps=, ...)``."""

    def interpret(self, record: EcgRecord, base_report: Any = None) -> Any:
        return self.interpreter.interpret(record, base_report=base_report)

    def generate(self, request: str, patient: Patient, steps: int | None = None) -> Any:
        return self.interpreter.generate(request, hr=patient.hr, age=patient.age, sex=patient.sex, steps=steps)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "execution_provider": self.execution_provider}

    def close(self) -> None:
        """Release what the backend holds (sessions, engines, modules); subclasses drop their references."""
        self.closed = True


ADAPTERS: Registry[type[BackendAdapter]] = Registry("backend")


def import_reason(module: str, hint: str) -> str | None:
    """Why ``module`` cannot be imported (with the install ``hint``); ``None`` when it can."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{module} is not installed ({exc.msg if hasattr(exc, 'msg') else exc}); {hint}"
    return None


from . import runtime_adapter, torch_adapter  # noqa: E402, F401 - register the adapters (they import this module)
