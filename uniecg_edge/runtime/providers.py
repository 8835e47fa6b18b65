"""onnxruntime execution providers: which to ask for, their options, and a check of the one really running.

An onnxruntime-gpu session whose CUDA or TensorRT libraries cannot load runs on the CPU without raising (it only
logs, e.g. ``Failed to create CUDAExecutionProvider. Require cuDNN 9.* and CUDA 13.*`` or ``Falling back to
['CPUExecutionProvider'] and retrying.``; edge-facts §7). So after opening every session the runtime reads
``session.get_providers()[0]``, logs it at INFO and compares it with the provider asked for: a provider asked for
by name that is not the one running raises :class:`BackendUnavailableError`; under ``auto`` (or with
``allow_fallback``) a one-line warning is logged and the provenance names the provider that really ran.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)

TENSORRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
AUTO_ORDER = (TENSORRT_EP, CUDA_EP, CPU_EP)  # fastest first
GPU_PROVIDERS = frozenset({TENSORRT_EP, CUDA_EP})
ALIASES = {"cpu": CPU_EP, "cuda": CUDA_EP, "tensorrt": TENSORRT_EP, "trt": TENSORRT_EP}
ORT_TRT_CACHE_DIR = "onnxruntime-trt"  # under the bundle's engines/ folder (not checksummed: built on the device)


def canonical_provider(name: str) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full names pass through; anything else is a ``ConfigError``."""
    if name.lower() in ALIASES:
        return ALIASES[name.lower()]
    if name.endswith("ExecutionProvider"):
        return name
    raise ConfigError(f"unknown execution provider {name!r} (use {', '.join(sorted(ALIASES))} or a full "
                      "onnxruntime provider name)")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


@dataclass(frozen=True)
class ProviderPlan:
    """The providers a session is opened with (in order), whether they were named by the user, and why the
    faster ones were passed over under ``auto``."""

    providers: tuple[str, ...]
    explicit: bool
    passed_over: tuple[str, ...] = ()

    @property
    def wanted(self) -> str:
        return self.providers[0]

    @property
    def on_gpu(self) -> bool:
        return self.wanted in GPU_PROVIDERS


def plan_providers(requested: Sequence[str] | None, available: Sequence[str]) -> ProviderPlan:
    """Providers for the sessions: those ``requested`` (each must be in this onnxruntime build), or under auto the
    fastest of TensorRT > CUDA > CPU that the build offers. GPU providers are followed by the slower ones so that
    nodes a provider cannot run fall back per node (TensorRT then CUDA then CPU)."""
    if requested:
        chosen = [canonical_provider(p) for p in requested]
        missing = [p for p in chosen if p not in available]
        if missing:
            raise BackendUnavailableError(
                f"this onnxruntime build has no {', '.join(missing)} (available: {', '.join(available)}); "
                "a GPU needs onnxruntime-gpu (Jetson: the Jetson AI Lab wheel)")
        chain = list(dict.fromkeys(chosen))
        explicit = True
        passed: list[str] = []
    else:
        start = next(i for i, p in enumerate(AUTO_ORDER) if p in available or p == CPU_EP)
        chain = [AUTO_ORDER[start]]
        explicit = False
        passed = [f"{p}: not in this onnxruntime build" for p in AUTO_ORDER[:start]]
    if chain[0] in GPU_PROVIDERS:
        for follower in AUTO_ORDER[AUTO_ORDER.index(chain[0]) + 1:]:
            if follower not in chain and (follower in available or follower == CPU_EP):
                chain.append(follower)
    return ProviderPlan(tuple(chain), explicit, tuple(passed))


def trt_profile_option(profile: Mapping[str, Mapping[str, Sequence[int]]], which: str) -> str:
    """A TensorRT-EP shape option (``trt_profile_min_shapes`` ...): ``name:1x2x3,name2:...`` from a profile."""
    return ",".join(f"{name}:{'x'.join(str(int(d)) for d in shapes[which])}" for name, shapes in profile.items())


def provider_options(provider: str, *, bundle_root: Path, precision: str, graph_entry: Mapping[str, Any],
                     device_id: int = 0) -> dict[str, Any]:
    """Options for one provider and graph: the TensorRT EP caches its engines inside the bundle's engines/
    folder and gets the manifest's optimization profile; CUDA gets the device."""
    if provider == TENSORRT_EP:
        cache = bundle_root / "engines" / ORT_TRT_CACHE_DIR
        quant_ops = " ".join((graph_entry.get("quantization") or {}).get("ops", []))
        options: dict[str, Any] = {
            "device_id": device_id,
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": precision in ("fp16", "int8"),
            "trt_int8_enable": "QuantizeLinear" in quant_ops,
        }
        profile = graph_entry.get("profile") or {}
        if profile:
            for which in ("min", "opt", "max"):
                options[f"trt_profile_{which}_shapes"] = trt_profile_option(profile, which)
        return options
    if provider == CUDA_EP:
        return {"device_id": device_id}
    return {}


def verify_provider(session: Any, wanted: str, what: str, *, strict: bool) -> str:
    """The provider really running ``session`` (``get_providers()[0]``), logged at INFO. When it is not ``wanted``:
    ``BackendUnavailableError`` if ``strict``, else a one-line warning. Returns the provider running."""
    running = list(session.get_providers())
    actual = running[0] if running else "no provider"
    if actual == wanted:
        log.info("%s runs on %s", what, actual)
        return actual
    message = (f"onnxruntime runs {what} on {actual}, not on the {wanted} asked for: a silent fallback (are the "
               "CUDA / cuDNN / TensorRT libraries this onnxruntime build needs installed?)")
    if strict:
        raise BackendUnavailableError(message)
    log.warning("%s", message)
    return actual
