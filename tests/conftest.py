"""Shared fixtures: real records from ../shared/data/ecg (skipped when absent), offline hub, slow marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ECG = Path(os.environ.get("UNIECG_SHARED_ECG", REPO_ROOT.parent / "shared" / "data" / "ecg"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("UNIECG_RUN_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow test: set UNIECG_RUN_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def shared_ecg() -> Path:
    """The folder of real ECG records; tests that use it skip cleanly where it is absent."""
    if not SHARED_ECG.is_dir():
        pytest.skip(f"real ECG records not found at {SHARED_ECG} (set UNIECG_SHARED_ECG)")
    return SHARED_ECG


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build models into a per-session cache, never into the user's home; commands without ``--model`` use the
    tiny untrained model (fast). Tests of the shipped trained model ask for it by name (``shipped_model_dir``)."""
    if "UNIECG_EDGE_CACHE" not in os.environ:
        os.environ["UNIECG_EDGE_CACHE"] = str(tmp_path_factory.mktemp("uniecg-cache"))
    os.environ["UNIECG_EDGE_MODEL"] = "untrained"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The untrained model (tiny, deterministic), saved once per session."""
    from uniecg_edge.model.default import untrained_model_dir

    return untrained_model_dir()


@pytest.fixture(scope="module")
def unet_and_terms() -> tuple[object, tuple[object, ...]]:
    """A tiny seeded UNet and its condition terms: the model outputs the scheduler tests step through."""
    import torch

    from uniecg_edge.model.unet import ConditionalUNet1d, UNetConfig

    torch.manual_seed(0)
    unet = ConditionalUNet1d(UNetConfig.tiny()).eval()
    cond = torch.randn(1, 1, unet.config.cond_dim)
    one = torch.ones(1, 1, 1)
    with torch.no_grad():
        terms = unet.condition_terms(cond, one, 60 * one, 75 * one)
    return unet, terms
