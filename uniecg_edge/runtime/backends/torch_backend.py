"""The ``torch`` backend: the bundle's graphs as the torch modules they were exported from (the reference).

Each graph is its export spec's wrapper (:mod:`uniecg_edge.export.specs`) around the source checkpoint, with the
same input and output names, so the runtime's token and diffusion loops run unchanged on the reference model.
The checkpoint must be the bundle's source (sha256 of the folder, as in the manifest): ``model_dir``, or the
package's default model when the bundle was exported from it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ConfigError
from ..generation import HostKvDecoder
from .base import BACKENDS, DTYPES, BackendOptions, Graph, KvDecoder, TensorInfo, cast_feeds

if TYPE_CHECKING:
    from ...export.bundle import Bundle

log = logging.getLogger(__name__)


class TorchGraph:
    """One export spec's torch wrapper as a :class:`~.base.Graph` (numpy in, numpy out, no autograd)."""

    def __init__(self, name: str, module: Any, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
        self.name, self.module, self.inputs, self.outputs = name, module, inputs, outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        arrays = cast_feeds(self.inputs, feeds, self.name)
        with torch.no_grad():
            result = self.module(*(torch.from_numpy(arrays[i.name]) for i in self.inputs))
        tensors = result if isinstance(result, (tuple, list)) else (result,)
        return {o.name: t.detach().cpu().numpy() for o, t in zip(self.outputs, tensors, strict=True)}


def source_model_dir(bundle: Bundle, model_dir: Path | None) -> Path:
    """The bundle's source checkpoint: ``model_dir`` or the default model, refused unless its sha256 matches."""
    from ...model.default import default_model_dir
    from ...model.uniecg import checkpoint_sha256

    source = bundle.manifest.get("source_model") or {}
    if model_dir is None:
        model_dir = default_model_dir()
    expected = source.get("sha256")
    actual = checkpoint_sha256(model_dir)
    if expected and actual != expected:
        raise ConfigError(f"{model_dir}: not the checkpoint {bundle.root} was exported from (model "
                          f"{source.get('name')!r}, sha256 {str(expected)[:12]}…); pass its folder with --model")
    return Path(model_dir)


class TorchBackend:
    """The reference model behind the bundle's graph names (CPU, fp32)."""

    name = "torch"

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        from ...export.spec import graph_specs
        from ...model.uniecg import UniEcgModel

        self.bundle = bundle
        self.model_dir = source_model_dir(bundle, options.model_dir)
        self.model = UniEcgModel.from_pretrained(self.model_dir)
        self.specs = {spec.name: spec for spec in graph_specs()}
        self._graphs: dict[str, TorchGraph] = {}

    @property
    def execution_provider(self) -> str:
        return "torch-cpu"

    def graph(self, name: str) -> Graph:
        if name not in self._graphs:
            if name not in self.specs:
                raise ConfigError(f"no graph {name!r} (known: {', '.join(self.specs)})")
            spec = self.specs[name]
            inputs = [TensorInfo(s.name, DTYPES[s.dtype], s.shape) for s in spec.inputs(self.model)]
            outputs = [TensorInfo(s.name, DTYPES[s.dtype], s.shape) for s in spec.outputs(self.model)]
            self._graphs[name] = TorchGraph(name, spec.wrapper(self.model), inputs, outputs)
        return self._graphs[name]

    def kv_decoder(self, graph: Graph, max_total_tokens: int) -> KvDecoder:
        return HostKvDecoder(graph)

    def describe(self) -> dict[str, Any]:
        import torch

        return {"backend": self.name, "execution_provider": self.execution_provider,
                "torch_version": torch.__version__, "model_dir": str(self.model_dir)}


@BACKENDS.register("torch")
def open_torch(bundle: Bundle, options: BackendOptions) -> TorchBackend:
    return TorchBackend(bundle, options)
