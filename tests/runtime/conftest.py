"""Bundles for the runtime tests, exported once per session: a full int8 bundle (the default precision of the
runtime benchmarks) and an fp32 bundle of the understanding graphs only (for token parity with torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniecg_edge.export import ExportOptions, export_bundle

UNDERSTANDING = ("ecg_encoder", "embed_tokens", "decoder")


@pytest.fixture(scope="session")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("runtime-int8") / "bundle"
    export_bundle(out, options=ExportOptions(precision="int8"))
    return out


@pytest.fixture(scope="session")
def fp32_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("runtime-fp32") / "bundle"
    export_bundle(out, options=ExportOptions(precision="fp32", graphs=UNDERSTANDING))
    return out
