"""Inference backends of the on-device runtime, by name: ``onnxruntime``, ``tensorrt``, ``torch`` (the reference).

Importing this package registers the three in :data:`BACKENDS` without importing onnxruntime, tensorrt or torch;
each loads its engine when it opens a bundle. :func:`choose_backend` resolves ``auto``.
"""

from __future__ import annotations

from . import ort_backend, torch_backend, trt_backend  # noqa: F401 - register the backends
from .base import BACKENDS, Backend, BackendOptions, Graph, KvDecoder, TensorInfo
from .selection import AUTO, BACKEND_CHOICES, choose_backend

__all__ = [
    "AUTO", "BACKENDS", "BACKEND_CHOICES", "Backend", "BackendOptions", "Graph", "KvDecoder", "TensorInfo",
    "choose_backend",
]
