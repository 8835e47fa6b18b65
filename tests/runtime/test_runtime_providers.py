"""Execution providers: the plan for each request, and the check that catches onnxruntime's silent CPU fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import BackendUnavailableError, ConfigError
from uniecg_edge.runtime import EdgeRuntime
from uniecg_edge.runtime import providers as providers_module
from uniecg_edge.runtime.backends import selection
from uniecg_edge.runtime.providers import (
    CPU_EP,
    CUDA_EP,
    TENSORRT_EP,
    canonical_provider,
    plan_providers,
    provider_options,
    verify_provider,
)
from uniecg_edge.wfdb_io import read_record

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


class SessionRunningOn:
    """Test double for an InferenceSession whose providers are known (no GPU exists on the test machine)."""

    def __init__(self, *running: str) -> None:
        self.running = list(running)

    def get_providers(self) -> list[str]:
        return self.running


def test_auto_plans_the_fastest_provider_the_build_has() -> None:
    assert plan_providers(None, ["AzureExecutionProvider", CPU_EP]).providers == (CPU_EP,)
    gpu = plan_providers(None, GPU_BUILD)
    assert gpu.providers == (TENSORRT_EP, CUDA_EP, CPU_EP) and not gpu.explicit and gpu.on_gpu
    cuda_only = plan_providers(None, [CUDA_EP, CPU_EP])
    assert cuda_only.providers == (CUDA_EP, CPU_EP)
    assert cuda_only.passed_over == (f"{TENSORRT_EP}: not in this onnxruntime build",)


def test_named_providers_are_checked_against_the_build() -> None:
    plan = plan_providers(["cuda"], GPU_BUILD)
    assert plan.providers == (CUDA_EP, CPU_EP) and plan.explicit
    with pytest.raises(BackendUnavailableError, match="no CUDAExecutionProvider .*onnxruntime-gpu") as err:
        plan_providers(["cuda"], [CPU_EP])
    assert "\n" not in str(err.value)
    assert canonical_provider("TRT") == TENSORRT_EP
    with pytest.raises(ConfigError, match="unknown execution provider 'gpu'"):
        canonical_provider("gpu")


def test_tensorrt_ep_options_cache_engines_in_the_bundle(tmp_path: Path) -> None:
    entry = {"quantization": {"ops": ["QuantizeLinear x4", "DequantizeLinear x4"]},
             "profile": {"x": {"min": [1, 1], "opt": [1, 8], "max": [4, 64]}}}
    options = provider_options(TENSORRT_EP, bundle_root=tmp_path, precision="int8", graph_entry=entry)
    assert options["trt_engine_cache_enable"]
    assert options["trt_engine_cache_path"].startswith(str(tmp_path / "engines"))
    assert options["trt_int8_enable"] and options["trt_fp16_enable"]
    assert options["trt_profile_min_shapes"] == "x:1x1" and options["trt_profile_max_shapes"] == "x:4x64"
    assert provider_options(CUDA_EP, bundle_root=tmp_path, precision="fp32", graph_entry={}) == {"device_id": 0}


def test_a_silent_fallback_raises_when_the_provider_was_named(caplog: pytest.LogCaptureFixture) -> None:
    fell_back = SessionRunningOn(CPU_EP)  # asked for CUDA, onnxruntime quietly runs on the CPU
    with pytest.raises(BackendUnavailableError, match="runs decoder.onnx on CPUExecutionProvider, not on the "
                                                      "CUDAExecutionProvider asked for") as err:
        verify_provider(fell_back, CUDA_EP, "decoder.onnx", strict=True)
    assert "\n" not in str(err.value)
    with caplog.at_level(logging.INFO, logger="uniecg_edge.runtime.providers"):
        assert verify_provider(fell_back, CUDA_EP, "decoder.onnx", strict=False) == CPU_EP
        assert verify_provider(SessionRunningOn(CUDA_EP, CPU_EP), CUDA_EP, "unet.onnx", strict=True) == CUDA_EP
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "silent fallback" in warnings[0].getMessage()
    assert any(r.levelno == logging.INFO and "unet.onnx runs on CUDAExecutionProvider" in r.getMessage()
               for r in caplog.records)


@pytest.fixture
def build_claims_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """This onnxruntime says it offers CUDA (as onnxruntime-gpu does without CUDA libraries); real sessions asked
    for CUDA then fall back to the CPU without raising, which the runtime must notice."""
    claimed = [CUDA_EP, CPU_EP]
    monkeypatch.setattr(providers_module, "available_providers", lambda: claimed)
    monkeypatch.setattr(selection, "available_providers", lambda: claimed)
    from uniecg_edge.runtime.backends import ort_backend

    monkeypatch.setattr(ort_backend, "available_providers", lambda: claimed)


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_real_sessions_falling_back_are_refused_or_reported(fp32_bundle: Path, build_claims_cuda: None) -> None:
    record = read_record(EXAMPLE_RECORD)
    named = EdgeRuntime.from_bundle(fp32_bundle, backend="onnxruntime", providers=["cuda"])
    with pytest.raises(BackendUnavailableError, match="not on the CUDAExecutionProvider asked for"):
        named.interpret(record, max_new_tokens=2)
    auto = EdgeRuntime.from_bundle(fp32_bundle, backend="auto")
    report = auto.interpret(record, max_new_tokens=2)
    prov = report.provenance
    assert prov["backend"] == "onnxruntime" and prov["execution_provider"] == CPU_EP
    assert prov["backend_details"]["providers_requested"] == [CUDA_EP, CPU_EP]
    assert set(prov["backend_details"]["graph_providers"].values()) == {CPU_EP}
