"""``--backend auto``: the fastest backend this machine can run the bundle on, and why the faster ones were not.

Order: TensorRT engines built for this GPU (``build-engines``) > onnxruntime TensorRT EP > CUDA EP > CPU EP. The
torch backend is never chosen automatically (it is the reference, and needs the source checkpoint).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...errors import BackendUnavailableError
from ..providers import available_providers, plan_providers
from .base import BACKENDS, Backend, BackendOptions
from .ort_backend import OnnxRuntimeBackend
from .trt_backend import open_tensorrt, tensorrt_unavailable

if TYPE_CHECKING:
    from ...export.bundle import Bundle

log = logging.getLogger(__name__)

AUTO = "auto"
BACKEND_CHOICES = (AUTO, "onnxruntime", "tensorrt", "torch")


def choose_backend(bundle: Bundle, requested: str, options: BackendOptions) -> tuple[Backend, list[str]]:
    """Open ``requested`` (a registered name, or ``auto``); also returns notes on the backends passed over."""
    if requested != AUTO:
        return BACKENDS.get(requested)(bundle, options), []
    notes: list[str] = []
    if options.providers:
        notes.append("tensorrt: not tried (onnxruntime providers were given)")
    else:
        reason = tensorrt_unavailable(bundle)
        if reason is None:
            try:
                return open_tensorrt(bundle, options), notes
            except BackendUnavailableError as exc:
                reason = str(exc)
        notes.append(f"tensorrt: {reason}")
    plan = plan_providers(options.providers, available_providers())
    notes.extend(plan.passed_over)
    backend = OnnxRuntimeBackend(bundle, options, plan)
    log.info("backend auto: onnxruntime on %s (%s)", plan.wanted, "; ".join(notes) or "first choice")
    return backend, notes
