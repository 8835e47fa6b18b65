"""The ``onnxruntime`` backend: one ``InferenceSession`` per graph, on the execution providers of the plan.

Every session is checked for a silent provider fallback (:func:`..providers.verify_provider`). On a GPU provider
the decoder keeps its KV cache on the device through IO binding (:mod:`.ort_iobinding`); on the CPU it uses
plain ``run`` with host arrays. Imports onnxruntime, never torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import BackendUnavailableError
from ..generation import HostKvDecoder
from ..providers import CPU_EP, ProviderPlan, available_providers, plan_providers, provider_options, verify_provider
from .base import BACKENDS, DTYPES, BackendOptions, Graph, KvDecoder, TensorInfo, call_positional, cast_feeds

if TYPE_CHECKING:
    from ...export.bundle import Bundle

log = logging.getLogger(__name__)


def make_session(path: str | os.PathLike[str], providers: Sequence[str | tuple[str, dict[str, Any]]] = (CPU_EP,),
                 intra_op_threads: int | None = None) -> Any:
    """An onnxruntime session for ``path`` on ``providers`` (names, or ``(name, options)`` pairs)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailableError(f"onnxruntime is not installed ({exc}); pip install onnxruntime "
                                      "(or onnxruntime-gpu)") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))


class OrtGraph:
    """One onnxruntime session as a :class:`~.base.Graph`; also callable with positional inputs in graph order."""

    def __init__(self, session: Any, name: str | None = None) -> None:
        self.session = session
        self.name = name or "graph"
        self.inputs = [TensorInfo(i.name, DTYPES.get(i.type, np.float32), tuple(i.shape))
                       for i in session.get_inputs()]
        self.outputs = [TensorInfo(o.name, DTYPES.get(o.type, np.float32), tuple(o.shape))
                        for o in session.get_outputs()]
        self.input_names = [i.name for i in self.inputs]
        self.input_dtypes = [i.dtype for i in self.inputs]
        self.output_names = [o.name for o in self.outputs]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **session_kwargs: Any) -> OrtGraph:
        return cls(make_session(path, **session_kwargs), name=os.path.basename(str(path)).split(".")[0])

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, cast_feeds(self.inputs, feeds, self.name))
        return dict(zip(self.output_names, outputs, strict=True))

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        return call_positional(self, inputs)


class OnnxRuntimeBackend:
    """A bundle's graphs as onnxruntime sessions (opened on first use, each verified for its provider)."""

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, options: BackendOptions, plan: ProviderPlan | None = None) -> None:
        self.bundle = bundle
        self.options = options
        self.plan = plan or plan_providers(options.providers, available_providers())
        strict = options.allow_fallback is False or (options.allow_fallback is None and self.plan.explicit)
        self.strict = strict
        self._graphs: dict[str, OrtGraph] = {}
        self.running: dict[str, str] = {}  # graph -> provider really running it

    @property
    def execution_provider(self) -> str:
        actual = sorted(set(self.running.values()))
        if not actual:
            return self.plan.wanted
        return actual[0] if len(actual) == 1 else "mixed: " + ", ".join(f"{g}={p}" for g, p in self.running.items())

    @property
    def io_binding(self) -> bool:
        return self.plan.on_gpu if self.options.io_binding is None else self.options.io_binding

    def _session_providers(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        entry = self.bundle.manifest["graphs"].get(name, {})
        return [(p, provider_options(p, bundle_root=self.bundle.root, precision=self.bundle.precision,
                                     graph_entry=entry, device_id=self.options.device_id))
                for p in self.plan.providers]

    def graph(self, name: str) -> Graph:
        if name not in self._graphs:
            path = self.bundle.graph_path(name)
            try:
                session = make_session(path, self._session_providers(name), self.options.intra_op_threads)
            except BackendUnavailableError:
                raise
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BackendUnavailableError(f"onnxruntime cannot open {path.name} on {self.plan.wanted}: "
                                              f"{first}") from exc
            self.running[name] = verify_provider(session, self.plan.wanted, path.name, strict=self.strict)
            self._graphs[name] = OrtGraph(session, name)
        return self._graphs[name]

    def kv_decoder(self, graph: Graph, max_total_tokens: int) -> KvDecoder:
        if self.io_binding and isinstance(graph, OrtGraph):
            from .ort_iobinding import IoBindingKvDecoder

            device = "cpu" if self.running.get(graph.name, self.plan.wanted) == CPU_EP else "cuda"
            return IoBindingKvDecoder(graph, device_type=device, device_id=self.options.device_id)
        return HostKvDecoder(graph)

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"backend": self.name, "execution_provider": self.execution_provider,
                "providers_requested": list(self.plan.providers), "onnxruntime_version": ort.__version__,
                "io_binding": self.io_binding, "graph_providers": dict(self.running)}


@BACKENDS.register("onnxruntime")
def open_onnxruntime(bundle: Bundle, options: BackendOptions) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(bundle, options)
