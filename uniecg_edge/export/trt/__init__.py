"""TensorRT engines for an edge bundle (``uniecg-edge build-engines``); ``tensorrt`` loads only when building.

Modules: ``versions`` (TensorRT 10 / 11 typing dispatch), ``profiles`` (optimization profiles), ``gpu`` (which
GPU), ``graphs`` (manifest graphs, quantization kind), ``cache`` (engine key, engine and timing caches),
``builder`` (the tensorrt build itself).
"""

from __future__ import annotations

from .builder import BuildOptions, EngineBuildError, EngineResult, build_engines, require_tensorrt
from .cache import engine_key
from .gpu import GpuInfo, detect_gpu
from .versions import BuildPlan, TrtVersion, plan_build, typing_policy

__all__ = [
    "BuildOptions", "BuildPlan", "EngineBuildError", "EngineResult", "GpuInfo", "TrtVersion", "build_engines",
    "detect_gpu", "engine_key", "plan_build", "require_tensorrt", "typing_policy",
]
