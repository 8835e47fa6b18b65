"""Engine key, graph digest, and the engine / timing caches under ``engines/`` (no TensorRT needed)."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from uniecg_edge.errors import ConfigError
from uniecg_edge.export.trt.cache import (
    cached_engine,
    engine_key,
    engine_paths,
    read_timing_cache,
    store_engine,
    timing_cache_path,
    write_timing_cache,
)
from uniecg_edge.export.trt.gpu import GpuInfo
from uniecg_edge.export.trt.graphs import graph_digest

ORIN = GpuInfo("NVIDIA Jetson AGX Orin Developer Kit", "8.7", "jetson")
H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "nvidia-smi")
SHA_A = hashlib.sha256(b"graph a").hexdigest()
SHA_B = hashlib.sha256(b"graph b").hexdigest()
PROFILE = {"latent": {"min": [1, 4, 128], "opt": [1, 4, 128], "max": [4, 4, 128]}}


def test_key_format_of_the_bundle_contract() -> None:
    assert engine_key(ORIN, "10.3.0.30", SHA_A, "fp16") == \
        f"nvidia-jetson-agx-orin-developer-kit_sm87_trt10.3.0.30_{SHA_A[:12]}_fp16"


def test_key_changes_with_each_fact() -> None:
    facts = {"gpu": (ORIN, GpuInfo(ORIN.name, "8.6", "given"), H100), "trt": ("10.3.0.30", "10.3.0.31"),
             "sha": (SHA_A, SHA_B), "precision": ("fp32", "fp16", "int8")}
    keys = {engine_key(g, t, s, p) for g, t, s, p in itertools.product(*facts.values())}
    assert len(keys) == 3 * 2 * 2 * 3


def test_key_refuses_a_non_digest() -> None:
    with pytest.raises(ValueError, match="sha256"):
        engine_key(ORIN, "10.3.0.30", "../../etc", "fp16")


def test_graph_digest_single_file_is_the_manifest_sha() -> None:
    assert graph_digest("unet.onnx", [], {"unet.onnx": SHA_A}) == SHA_A


def test_graph_digest_covers_external_data() -> None:
    files = {"decoder.onnx": SHA_A, "decoder.onnx.data": SHA_B}
    digest = graph_digest("decoder.onnx", ["decoder.onnx.data"], files)
    assert digest == hashlib.sha256(f"decoder.onnx {SHA_A}\ndecoder.onnx.data {SHA_B}\n".encode()).hexdigest()
    changed = graph_digest("decoder.onnx", ["decoder.onnx.data"], {**files, "decoder.onnx.data": SHA_A})
    assert changed != digest  # new weights, same graph file: a new engine
    with pytest.raises(ConfigError, match="no sha256 for decoder.onnx.data"):
        graph_digest("decoder.onnx", ["decoder.onnx.data"], {"decoder.onnx": SHA_A})


def test_timing_cache_is_shared_across_graphs_but_not_devices(tmp_path: Path) -> None:
    path = timing_cache_path(tmp_path, ORIN, "10.3.0.30", "fp16")
    assert path == tmp_path / "engines" / "timing-nvidia-jetson-agx-orin-developer-kit_sm87_trt10.3.0.30_fp16.cache"
    assert timing_cache_path(tmp_path, H100, "10.3.0.30", "fp16") != path
    assert read_timing_cache(path) == b""
    write_timing_cache(path, b"\x01\x02")
    assert read_timing_cache(path) == b"\x01\x02"


def _store(bundle: Path, key: str, graph: str = "unet", plan: bytes = b"plan-bytes", profile: dict = PROFILE) -> Path:
    return store_engine(bundle, key, graph, plan, {"tensorrt_version": "10.3.0.30", "precision": "fp16"},
                        {"profile": profile, "build_s": 1.5})


def test_stored_engine_is_a_cache_hit(tmp_path: Path) -> None:
    key = engine_key(ORIN, "10.3.0.30", SHA_A, "fp16")
    plan = _store(tmp_path, key)
    assert plan == tmp_path / "engines" / key / "unet.plan" and plan.read_bytes() == b"plan-bytes"
    hit = cached_engine(tmp_path, key, "unet", PROFILE)
    assert hit is not None and hit["plan_sha256"] == hashlib.sha256(b"plan-bytes").hexdigest()
    meta = json.loads(engine_paths(tmp_path, key, "unet").meta.read_text())
    assert meta["key"] == key and meta["tensorrt_version"] == "10.3.0.30"
    assert meta["graphs"]["unet"]["size_bytes"] == 10


def test_changed_profile_or_damaged_plan_rebuilds(tmp_path: Path) -> None:
    key = engine_key(ORIN, "10.3.0.30", SHA_A, "fp16")
    plan = _store(tmp_path, key)
    other = {"latent": {"min": [1, 4, 128], "opt": [1, 4, 128], "max": [8, 4, 128]}}
    assert cached_engine(tmp_path, key, "unet", other) is None
    plan.write_bytes(b"plan-bytez")
    assert cached_engine(tmp_path, key, "unet", PROFILE) is None


def test_missing_or_foreign_metadata_rebuilds(tmp_path: Path) -> None:
    key = engine_key(ORIN, "10.3.0.30", SHA_A, "fp16")
    assert cached_engine(tmp_path, key, "unet", PROFILE) is None  # nothing built yet
    _store(tmp_path, key)
    paths = engine_paths(tmp_path, key, "unet")
    meta = json.loads(paths.meta.read_text())
    paths.meta.write_text(json.dumps({**meta, "key": "another"}))
    assert cached_engine(tmp_path, key, "unet", PROFILE) is None
    paths.meta.write_text("{not json")
    assert cached_engine(tmp_path, key, "unet", PROFILE) is None


def test_two_graphs_with_one_key_share_engine_json(tmp_path: Path) -> None:
    key = engine_key(ORIN, "10.3.0.30", SHA_A, "fp16")
    _store(tmp_path, key, "unet")
    _store(tmp_path, key, "unet_copy", plan=b"other")
    assert cached_engine(tmp_path, key, "unet", PROFILE) is not None
    assert cached_engine(tmp_path, key, "unet_copy", PROFILE) is not None
