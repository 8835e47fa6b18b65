"""VAE encoder/decoder: published sizes, shapes, no in-place input change, sampling helper, persistence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.vae import EcgVae, SequenceSelfAttention, VaeConfig, VaeDecoder, VaeEncoder


def perturbed(model: nn.Module, seed: int, scale: float = 0.02) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)
    return model.eval()


def test_parameter_counts_match_the_published_vae() -> None:
    cfg = VaeConfig.diffusets()
    assert sum(p.numel() for p in VaeEncoder(cfg).parameters()) == 12_218_448
    assert sum(p.numel() for p in VaeDecoder(cfg).parameters()) == 17_333_664
    assert (cfg.n_leads, cfg.n_samples, cfg.latent_channels, cfg.latent_length) == (12, 1024, 4, 128)
    assert cfg.scale_factor == pytest.approx(0.18215)


def test_full_decoder_shape_and_input_left_untouched() -> None:
    decoder = VaeDecoder(VaeConfig.diffusets()).eval()
    latent = torch.randn(1, 4, 128)
    before = latent.clone()
    with torch.no_grad():
        ecg = decoder(latent)
    assert ecg.shape == (1, 12, 1024) and torch.isfinite(ecg).all()
    assert torch.equal(latent, before)


def test_decoder_undoes_the_latent_scale() -> None:
    decoder = perturbed(VaeDecoder(VaeConfig.tiny()), seed=1)
    z = torch.randn(2, 4, 128)
    with torch.no_grad():
        assert torch.allclose(decoder(z * decoder.config.scale_factor), decoder.layers(z), atol=1e-5)


def test_encoder_shapes_clamp_and_sampling() -> None:
    encoder = perturbed(VaeEncoder(VaeConfig.tiny()), seed=2)
    ecg = torch.randn(2, 12, 1024)
    with torch.no_grad():
        mean, logvar = encoder(ecg)
        assert mean.shape == logvar.shape == (2, 4, 128)
        noise = torch.randn(2, 4, 128)
        scale = encoder.config.scale_factor
        expected = (mean + torch.exp(0.5 * logvar) * noise) * scale
        assert torch.allclose(encoder.sample_latent(mean, logvar, noise=noise), expected)
        a = encoder.encode(ecg, generator=torch.Generator().manual_seed(7))
        b = encoder.encode(ecg, generator=torch.Generator().manual_seed(7))
        assert torch.equal(a, b) and not torch.equal(a, encoder.encode(ecg, sample=False))
        assert torch.allclose(encoder.encode(ecg, sample=False), mean * scale)
        encoder.layers[-1].bias[4:].fill_(1e4)  # logvar channels pushed far beyond the published clamp
        _, logvar = encoder(ecg)
    assert logvar.max().item() == encoder.config.logvar_max


def test_attention_equals_torch_multihead_attention() -> None:
    torch.manual_seed(0)
    for heads in (1, 4):
        mine = perturbed(SequenceSelfAttention(heads, 32), seed=3, scale=0.2)
        reference = nn.MultiheadAttention(32, heads, batch_first=True).eval()
        with torch.no_grad():
            reference.in_proj_weight.copy_(mine.in_proj.weight)
            reference.in_proj_bias.copy_(mine.in_proj.bias)
            reference.out_proj.load_state_dict(mine.out_proj.state_dict())
            x = torch.randn(2, 16, 32)
            assert (mine(x) - reference(x, x, x, need_weights=False)[0]).abs().max() < 1e-5


def test_round_trip_through_tiny_vae_and_persistence(tmp_path) -> None:
    vae = perturbed(EcgVae(VaeConfig.tiny()), seed=4)
    ecg = torch.randn(2, 12, 1024)
    with torch.no_grad():
        recon, mean, logvar = vae(ecg, generator=torch.Generator().manual_seed(0))
    assert recon.shape == ecg.shape and mean.shape == logvar.shape == (2, 4, 128)
    loaded = EcgVae.from_pretrained(vae.save_pretrained(tmp_path / "vae")).eval()
    decoder = VaeDecoder.from_pretrained(vae.decoder.save_pretrained(tmp_path / "decoder")).eval()
    assert loaded.config == vae.config == decoder.config
    z = torch.randn(1, 4, 128)
    with torch.no_grad():
        assert torch.equal(loaded.decoder(z), vae.decoder(z))
        assert torch.equal(decoder(z), vae.decoder(z))
        assert torch.equal(loaded.encoder(ecg)[0], vae.encoder(ecg)[0])


@pytest.mark.parametrize(
    "kwargs",
    [{"norm_groups": 7}, {"n_samples": 1020}, {"scale_factor": 0.0}, {"block_out_channels": ()}, {"n_leads": 0}],
)
def test_invalid_configs_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        VaeConfig(**kwargs)  # type: ignore[arg-type]
