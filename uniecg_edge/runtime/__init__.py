"""The on-device runtime: an edge bundle on onnxruntime, TensorRT or torch (DESIGN.md §4-§5).

``EdgeRuntime.from_bundle(dir, backend="auto")`` verifies the bundle and opens it on the fastest backend available
(TensorRT engines > onnxruntime TensorRT EP > CUDA EP > CPU EP), checking which execution provider really runs;
``interpret`` and ``generate`` follow the torch pipeline's contract. Modules: ``backends`` (registry and the three
backends), ``providers`` (execution providers and the fallback check), ``generation`` (KV-cache token loop),
``diffusion`` (text -> ECG), ``schedulers`` (numpy samplers), ``prompt`` (tokenizer and splice), ``engine``.
Importing this package imports no inference engine; attributes load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EdgeRuntime": "engine", "InferenceSession": "engine", "GeneratedEcg": "results",
    "SamplingConfig": "generation", "SamplerConfig": "schedulers", "BACKENDS": "backends",
    "BackendOptions": "backends",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
