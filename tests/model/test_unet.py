"""ConditionalUNet1d: sizes, the condition-once fast path against real cross-attention, persistence."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.unet import ConditionalUNet1d, MultiheadWeights, UNetConfig


def perturbed(model: nn.Module, seed: int, scale: float = 0.05) -> nn.Module:
    """Random weights everywhere (biases, norms and the attention biases are zero/one at init otherwise)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=gen) * scale)
    return model.eval()


def patient(batch: int, cond_dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, 1, cond_dim, generator=gen)
    sex = torch.tensor([1.0, 0.0] * batch)[:batch].view(batch, 1, 1)  # M=1, F=0
    age = torch.linspace(25.0, 85.0, batch).view(batch, 1, 1)  # years, raw
    hr = torch.linspace(48.0, 130.0, batch).view(batch, 1, 1)  # bpm, raw
    return cond, sex, age, hr


def test_preset_parameter_counts_match_the_published_models() -> None:
    for preset, total in (("diffusets", 14_177_792), ("diffusets_kt", 21_739_008)):
        model = ConditionalUNet1d(UNetConfig.preset(preset))
        params = list(model.parameters())
        assert sum(p.numel() for p in params) == total
        assert sum(p.numel() for p in params if not p.requires_grad) == 832_000  # 13 frozen 1000x64 tables
    tiny = ConditionalUNet1d(UNetConfig.tiny())
    assert sum(p.numel() for p in tiny.parameters()) < 400_000


def test_presets_by_classmethod_and_name() -> None:
    assert UNetConfig.diffusets() == UNetConfig() == UNetConfig.preset("diffusets")
    assert UNetConfig.diffusets_kt().cond_dim == 8192
    assert UNetConfig().num_blocks == 13 and UNetConfig.tiny().num_blocks == 7
    with pytest.raises(ConfigError, match="unknown UNet preset"):
        UNetConfig.preset("huge")


@pytest.mark.parametrize(
    "kwargs",
    [{"kernel_size": 6}, {"latent_length": 100}, {"num_levels": 1}, {"cond_dim": 0}, {"num_heads": 3}],
)
def test_invalid_configs_raise_config_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        UNetConfig(**kwargs)


def test_time_table_is_the_published_sinusoid() -> None:
    model = ConditionalUNet1d(UNetConfig.tiny())
    table = model.downsampling_blocks[0].block.time_emb.embeddings
    dim = model.config.time_embed_dim
    half = dim // 2
    assert tuple(table.shape) == (model.config.num_train_timesteps, dim) and not table.requires_grad
    for t, i in ((0, 0), (0, half - 1), (499, 3), (999, half - 1)):
        angle = (t + 1) * math.exp(-i * 10.0 / (half - 1))
        assert table[t, i].item() == pytest.approx(math.sin(angle), abs=1e-5)
        assert table[t, half + i].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_shapes_and_terms_of_the_tiny_model() -> None:
    model = perturbed(ConditionalUNet1d(UNetConfig.tiny()), seed=1)
    cond, sex, age, hr = patient(3, model.config.cond_dim)
    terms = model.condition_terms(cond, sex, age, hr)
    specs = model.config.block_specs()
    assert len(terms) == len(specs) == 7
    assert [tuple(t.shape) for t in terms] == [(3, 1, s.c_short) for s in specs]
    x = torch.randn(3, 4, 128)
    before = x.clone()
    eps = model(x, torch.tensor([0, 500, 999]), terms)
    assert eps.shape == (3, 4, 128) and torch.isfinite(eps).all()
    assert torch.equal(x, before)


def test_multihead_weights_match_torch_multihead_attention() -> None:
    torch.manual_seed(0)
    for dim, heads in ((8, 8), (32, 4)):
        reference = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
        with torch.no_grad():
            reference.in_proj_bias.normal_()
            reference.out_proj.bias.normal_()
        mine = MultiheadWeights(dim, heads)
        mine.load_state_dict(reference.state_dict())
        q, k, v = torch.randn(2, 16, dim), torch.randn(2, 16, dim), torch.randn(2, 16, dim)
        expected, _ = reference(q, k, v, need_weights=False)
        assert (mine(q, k, v) - expected).abs().max() < 1e-5
        assert (mine.reference(q, k, v) - expected).abs().max() < 1e-6


@pytest.mark.parametrize("preset", ["tiny", "diffusets"])
def test_condition_once_equals_cross_attention(preset: str) -> None:
    torch.manual_seed(0)
    model = perturbed(ConditionalUNet1d(UNetConfig.preset(preset)), seed=2)
    batch = 3
    cond, sex, age, hr = patient(batch, model.config.cond_dim, seed=3)
    x = torch.randn(batch, 4, 128)
    t = torch.tensor([0, 411, 999])
    with torch.no_grad():
        fast = model(x, t, model.condition_terms(cond, sex, age, hr))
        reference = model.forward_with_cross_attention(x, t, cond, sex, age, hr)
        other = model.forward_with_cross_attention(x, t, torch.randn_like(cond), sex, age, hr)
    assert (fast - reference).abs().max() < 1e-5
    assert (reference - other).abs().max() > 1e-3  # the condition matters, so the comparison is not vacuous


def test_condition_terms_do_not_depend_on_batch_companions() -> None:
    model = perturbed(ConditionalUNet1d(UNetConfig.tiny()), seed=4)
    cond, sex, age, hr = patient(2, model.config.cond_dim)
    both = model.condition_terms(cond, sex, age, hr)
    first = model.condition_terms(cond[:1], sex[:1], age[:1], hr[:1])
    for a, b in zip(both, first, strict=True):
        assert torch.allclose(a[:1], b, atol=1e-6)


def test_wrong_condition_shape_is_rejected() -> None:
    model = ConditionalUNet1d(UNetConfig.tiny())
    _, sex, age, hr = patient(1, 64)
    with pytest.raises(ValueError, match="cond must be"):
        model.condition_terms(torch.zeros(1, 1, 65), sex, age, hr)


def test_save_and_load_pretrained_round_trip(tmp_path) -> None:
    model = perturbed(ConditionalUNet1d(UNetConfig.tiny()), seed=5)
    folder = model.save_pretrained(tmp_path / "unet")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
    loaded = ConditionalUNet1d.from_pretrained(folder).eval()
    assert loaded.config == model.config
    cond, sex, age, hr = patient(2, model.config.cond_dim)
    x, t = torch.randn(2, 4, 128), torch.tensor([3, 700])
    with torch.no_grad():
        a = model(x, t, model.condition_terms(cond, sex, age, hr))
        b = loaded(x, t, loaded.condition_terms(cond, sex, age, hr))
    assert torch.equal(a, b)


def test_standardised_patient_scalars_are_raw_scalars_shifted_and_scaled(tmp_path: Path) -> None:
    """The default feeds sex, age and rate raw (DiffuSETS); a standardising config sees (x - center) * scale."""
    center, scale = (0.5, 50.0, 80.0), (2.0, 0.05, 1.0 / 30.0)
    torch.manual_seed(0)
    raw = ConditionalUNet1d(UNetConfig.tiny()).eval()
    standard = ConditionalUNet1d(dataclasses.replace(UNetConfig.tiny(), scalar_center=center,
                                                     scalar_scale=scale)).eval()
    standard.load_state_dict(raw.state_dict())
    cond = torch.randn(2, 1, raw.config.cond_dim)
    sex, age, hr = (torch.tensor([1.0, 0.0]), torch.tensor([30.0, 70.0]), torch.tensor([55.0, 130.0]))
    shifted = [(v - c) * s for v, c, s in zip((sex, age, hr), center, scale, strict=True)]
    with torch.no_grad():
        expected = raw.condition_terms(cond, *shifted)
        for a, b in zip(standard.condition_terms(cond, sex, age, hr), expected, strict=True):
            torch.testing.assert_close(a, b)
        rates = [standard.condition_terms(cond[:1], sex[:1], age[:1], torch.tensor([rate]))[0]
                 for rate in (50.0, 130.0)]
    assert not torch.allclose(rates[0], rates[1], atol=1e-3)
    standard.save_pretrained(tmp_path / "unet")
    again = ConditionalUNet1d.from_pretrained(tmp_path / "unet")
    assert again.config == standard.config and again.config.scalar_center == center


def test_scalar_standardisation_needs_three_finite_numbers() -> None:
    with pytest.raises(ConfigError, match="scalar_scale"):
        UNetConfig(scalar_scale=(1.0, 2.0))
    with pytest.raises(ConfigError, match="scalar_center"):
        UNetConfig(scalar_center=(0.0, float("nan"), 0.0))

