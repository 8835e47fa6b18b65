"""Projector: GEM parameter counts, ECG-R1 layout, token-wise mapping, save/load."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.projector import EcgProjector, ProjectorConfig

# model-facts §2.2
GEM_ECG_PROJECTOR_PARAMS = 787_456  # Linear 768 -> 1024
GEM_MM_PROJECTOR_PARAMS = 20_979_712  # Linear 1024 -> 4096, GELU, Linear 4096 -> 4096


def _count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def test_gem_preset_has_the_published_parameter_counts() -> None:
    with torch.device("meta"):
        projector = EcgProjector(ProjectorConfig.gem())
    assert _count(projector.bridge) == GEM_ECG_PROJECTOR_PARAMS
    assert _count(projector.fc1) + _count(projector.fc2) == GEM_MM_PROJECTOR_PARAMS


def test_gem_shape_maps_768_to_4096_per_token() -> None:
    torch.manual_seed(0)
    projector = EcgProjector(ProjectorConfig.gem()).eval()
    tokens = torch.randn(1, 3, 768)
    with torch.inference_mode():
        out = projector(tokens)
        alone = torch.cat([projector(tokens[:, i : i + 1]) for i in range(3)], dim=1)
    assert out.shape == (1, 3, 4096)
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_mlp2x_has_no_bridge_and_computes_linear_gelu_linear() -> None:
    torch.manual_seed(0)
    projector = EcgProjector(ProjectorConfig.mlp2x(in_dim=16, out_dim=24)).eval()
    assert projector.bridge is None
    x = torch.randn(2, 5, 16)
    expected = F.linear(
        F.gelu(F.linear(x, projector.fc1.weight, projector.fc1.bias)), projector.fc2.weight, projector.fc2.bias
    )
    with torch.inference_mode():
        torch.testing.assert_close(projector(x), expected)


@pytest.mark.parametrize("mid_dim", [None, 12])
def test_save_and_load_round_trip(mid_dim: int | None, tmp_path) -> None:
    torch.manual_seed(0)
    projector = EcgProjector(ProjectorConfig(in_dim=8, hidden_dim=20, out_dim=16, mid_dim=mid_dim)).eval()
    loaded = EcgProjector.from_pretrained(projector.save_pretrained(tmp_path / "p")).eval()
    assert loaded.config == projector.config
    x = torch.randn(2, 4, 8)
    with torch.inference_mode():
        assert torch.equal(loaded(x), projector(x))


def test_invalid_config_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="out_dim"):
        ProjectorConfig(in_dim=8, hidden_dim=8, out_dim=0)
