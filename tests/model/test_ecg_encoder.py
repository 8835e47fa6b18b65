"""ECG encoder: GEM shape and size, tiny preset, attention against torch's MultiheadAttention, save/load, export."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.ecg_encoder import EcgEncoder, EcgEncoderConfig

# model-facts §2.2: ECG-CoCa ECG tower parameters on GEM's path (without ln_post / proj)
GEM_TOWER_PARAMS_USED = 85_595_136


@pytest.fixture(scope="module")
def gem_encoder() -> EcgEncoder:
    torch.manual_seed(0)
    return EcgEncoder(EcgEncoderConfig.gem()).eval()


@pytest.fixture()
def tiny_encoder() -> EcgEncoder:
    torch.manual_seed(1)
    return EcgEncoder(EcgEncoderConfig.tiny()).eval()


def test_gem_preset_maps_12x5000_to_101x768(gem_encoder: EcgEncoder) -> None:
    ecg = torch.randn(1, 12, 5000)
    with torch.inference_mode():
        tokens = gem_encoder(ecg)
    assert tokens.shape == (1, 101, 768)
    assert gem_encoder.num_tokens == 101
    assert torch.isfinite(tokens).all()


def test_gem_preset_parameter_count_matches_published_tower(gem_encoder: EcgEncoder) -> None:
    assert sum(p.numel() for p in gem_encoder.parameters()) == GEM_TOWER_PARAMS_USED


def test_tiny_preset_keeps_gem_token_count_and_batches_independently(tiny_encoder: EcgEncoder) -> None:
    ecg = torch.randn(3, 12, 5000)
    with torch.inference_mode():
        together = tiny_encoder(ecg)
        alone = torch.cat([tiny_encoder(ecg[i : i + 1]) for i in range(3)])
    assert together.shape == (3, 101, 64)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def _reference_forward(encoder: EcgEncoder, ecg: torch.Tensor) -> torch.Tensor:
    """The same network written with torch.nn.MultiheadAttention (sequence-first), from the encoder's weights."""
    cfg = encoder.config
    x = F.conv1d(ecg, encoder.patch_embed.weight, stride=cfg.patch_size).permute(0, 2, 1)
    x = torch.cat([encoder.cls_token.view(1, 1, -1).expand(x.shape[0], 1, -1), x], dim=1) + encoder.pos_embed
    x = F.layer_norm(x, (cfg.width,), encoder.ln_pre.weight, encoder.ln_pre.bias)
    x = x.transpose(0, 1)  # (L, B, W)
    for block in encoder.blocks:
        mha = torch.nn.MultiheadAttention(cfg.width, cfg.heads)
        mha.in_proj_weight.data.copy_(block.attn.qkv.weight)
        mha.in_proj_bias.data.copy_(block.attn.qkv.bias)
        mha.out_proj.weight.data.copy_(block.attn.proj.weight)
        mha.out_proj.bias.data.copy_(block.attn.proj.bias)
        h = F.layer_norm(x, (cfg.width,), block.norm1.weight, block.norm1.bias)
        x = x + mha(h, h, h, need_weights=False)[0]
        h = F.layer_norm(x, (cfg.width,), block.norm2.weight, block.norm2.bias)
        x = x + F.linear(
            F.gelu(F.linear(h, block.mlp.fc1.weight, block.mlp.fc1.bias)), block.mlp.fc2.weight, block.mlp.fc2.bias
        )
    return x.transpose(0, 1)


def test_matches_a_multiheadattention_reference(tiny_encoder: EcgEncoder) -> None:
    ecg = torch.randn(2, 12, 5000)
    with torch.inference_mode():
        torch.testing.assert_close(tiny_encoder(ecg), _reference_forward(tiny_encoder, ecg), atol=2e-5, rtol=1e-4)


def test_rejects_wrong_input_shape(tiny_encoder: EcgEncoder) -> None:
    with pytest.raises(ValueError, match="expects"):
        tiny_encoder(torch.randn(1, 8, 5000))
    with pytest.raises(ValueError, match="expects"):
        tiny_encoder(torch.randn(1, 12, 2500))


@pytest.mark.parametrize(
    "changes, message",
    [({"seq_length": 5001}, "multiple of patch_size"), ({"heads": 5}, "divisible"), ({"layers": 0}, "layers")],
)
def test_invalid_configs_raise_config_error(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EcgEncoderConfig(**{**EcgEncoderConfig.tiny().__dict__, **changes})


def test_save_and_load_round_trip_gives_identical_outputs(tiny_encoder: EcgEncoder, tmp_path) -> None:
    folder = tiny_encoder.save_pretrained(tmp_path / "enc")
    assert json.loads((folder / "config.json").read_text())["width"] == 64
    loaded = EcgEncoder.from_pretrained(folder).eval()
    assert loaded.config == tiny_encoder.config
    ecg = torch.randn(1, 12, 5000)
    with torch.inference_mode():
        assert torch.equal(loaded(ecg), tiny_encoder(ecg))


def test_loading_weights_of_another_shape_is_a_config_error(tiny_encoder: EcgEncoder, tmp_path) -> None:
    folder = tiny_encoder.save_pretrained(tmp_path / "enc")
    config = json.loads((folder / "config.json").read_text())
    config["layers"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="do not match"):
        EcgEncoder.from_pretrained(folder)


def test_exports_with_a_dynamic_batch(tiny_encoder: EcgEncoder) -> None:
    batch = torch.export.Dim("batch", min=1, max=32)
    program = torch.export.export(tiny_encoder, (torch.randn(2, 12, 5000),), dynamic_shapes=({0: batch},))
    ecg = torch.randn(3, 12, 5000)
    with torch.inference_mode():
        torch.testing.assert_close(program.module()(ecg), tiny_encoder(ecg), atol=1e-5, rtol=1e-5)
