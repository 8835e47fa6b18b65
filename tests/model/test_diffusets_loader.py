"""Loading published DiffuSETS pickles: state dicts built from the PUBLISHED names and shapes (fixtures written
from the published code by tests/model/data/make_published_shapes.py, independently of the package's modules)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.diffusets import load_diffusets_unet, load_diffusets_vae, load_diffusets_vae_decoder
from uniecg_edge.model.unet import ConditionalUNet1d
from uniecg_edge.model.vae import EcgVae, VaeDecoder

DATA = Path(__file__).resolve().parent / "data"

Shapes = dict[str, list[int]]


def shapes(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def random_state(layout: Shapes, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=gen) * 0.05 for key, shape in layout.items()}


def count(layout: Shapes) -> int:
    return sum(math.prod(shape) for shape in layout.values())


@pytest.fixture(scope="module")
def unet_1536(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_state(shapes("diffusets_unet_d1536.json"), seed=0)
    path = tmp_path_factory.mktemp("unet") / "unet_all.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    layout = shapes("diffusets_vae.json")
    parts = {part: random_state(layout[part], seed=i) for i, part in enumerate(("encoder", "decoder"))}
    path = tmp_path_factory.mktemp("vae") / "vae_model.pth"
    torch.save(parts, path)
    return path, parts


def test_fixtures_have_the_published_parameter_counts() -> None:
    assert count(shapes("diffusets_unet_d1536.json")) == 14_177_792
    assert count(shapes("diffusets_unet_d8192.json")) == 21_739_008
    vae = shapes("diffusets_vae.json")
    assert count(vae["encoder"]) == 12_218_448 and count(vae["decoder"]) == 17_333_664


def test_unet_raw_state_dict_loads_every_tensor(unet_1536) -> None:
    path, state = unet_1536
    unet = load_diffusets_unet(path)
    assert isinstance(unet, ConditionalUNet1d) and not unet.training
    assert unet.config.cond_dim == 1536 and unet.config.num_levels == 7 and unet.config.kernel_size == 7
    loaded = unet.state_dict()
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor), key
    assert load_diffusets_unet(path, cond_dim=1536).config == unet.config


def test_loaded_unet_runs_both_paths_alike(unet_1536) -> None:
    unet = load_diffusets_unet(unet_1536[0])
    gen = torch.Generator().manual_seed(1)
    cond = torch.randn(2, 1, 1536, generator=gen)
    sex, age, hr = torch.tensor([1.0, 0.0]).view(2, 1, 1), torch.full((2, 1, 1), 64.0), torch.full((2, 1, 1), 80.0)
    x, t = torch.randn(2, 4, 128, generator=gen), torch.tensor([5, 950])
    with torch.no_grad():
        fast = unet(x, t, unet.condition_terms(cond, sex, age, hr))
        reference = unet.forward_with_cross_attention(x, t, cond, sex, age, hr)
    assert (fast - reference).abs().max() < 1e-5


def test_unet_wrapped_with_module_prefix_and_d8192(tmp_path) -> None:
    state = random_state(shapes("diffusets_unet_d8192.json"), seed=2)
    path = tmp_path / "unet_kt.pth"
    torch.save({"epoch": 199, "state_dict": {"module." + k: v for k, v in state.items()}}, path)
    unet = load_diffusets_unet(path)
    assert unet.config.cond_dim == 8192
    key = "upsampling_blocks.5.block.cross_attention.value_combiner.weight"
    assert torch.equal(unet.state_dict()[key], state[key])
    with pytest.raises(ConfigError, match="text dimension 8192, not 1536"):
        load_diffusets_unet(path, cond_dim=1536)


def test_unet_wrong_shape_missing_and_unexpected_keys(tmp_path, unet_1536) -> None:
    _, good = unet_1536
    bad_key = "bottelneck.cross_attention.to_v.weight"
    cases = {
        "shape": ({**good, bad_key: torch.zeros(31, 256)}, f"{bad_key}' has shape \\(31, 256\\)"),
        "missing": ({k: v for k, v in good.items() if k != bad_key}, f"missing key '{bad_key}'"),
        "unexpected": ({**good, "extra.weight": torch.zeros(1)}, "unexpected key 'extra.weight'"),
        "not unet": ({"weight": torch.zeros(3)}, "not a DiffuSETS UNet"),
    }
    for name, (state, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pth"
        torch.save(state, path)
        with pytest.raises(ConfigError, match=message) as info:
            load_diffusets_unet(path)
        assert path.name in str(info.value) and "\n" not in str(info.value)


def test_unreadable_files_raise_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_diffusets_unet(tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a pickle at all")
    with pytest.raises(ConfigError, match="not a weights-only torch checkpoint"):
        load_diffusets_unet(garbage)
    arbitrary = tmp_path / "object.pth"
    torch.save({"args": argparse.Namespace(lr=1e-3)}, arbitrary)  # a global outside the weights-only allow-list
    with pytest.raises(ConfigError, match="not a weights-only torch checkpoint"):
        load_diffusets_unet(arbitrary)


def test_vae_loads_encoder_and_decoder(vae_file) -> None:
    path, parts = vae_file
    vae = load_diffusets_vae(path)
    assert isinstance(vae, EcgVae) and not vae.training
    for part in ("encoder", "decoder"):
        loaded = getattr(vae, part).state_dict()
        assert set(loaded) == {"layers." + k for k in parts[part]}  # published index i -> layers.i
        for key, tensor in parts[part].items():
            assert torch.equal(loaded["layers." + key], tensor), (part, key)
    decoder = load_diffusets_vae_decoder(path)
    assert isinstance(decoder, VaeDecoder)
    z = torch.randn(1, 4, 128)
    with torch.no_grad():
        assert torch.equal(decoder(z), vae.decoder(z))


def test_vae_flat_keys_and_wrappers(tmp_path, vae_file) -> None:
    _, parts = vae_file
    flat = {f"{part}.{k}": v for part, sd in parts.items() for k, v in sd.items()}
    path = tmp_path / "flat.pth"
    torch.save({"model_state_dict": flat}, path)
    vae = load_diffusets_vae(path)
    assert torch.equal(vae.decoder.state_dict()["layers.25.weight"], parts["decoder"]["25.weight"])


def test_vae_errors_name_the_file_and_key(tmp_path, vae_file) -> None:
    _, parts = vae_file
    only_encoder = tmp_path / "encoder_only.pth"
    torch.save({"encoder": parts["encoder"]}, only_encoder)
    with pytest.raises(ConfigError, match="encoder_only.pth: missing key 'decoder'"):
        load_diffusets_vae(only_encoder)
    with pytest.raises(ConfigError, match="missing key 'decoder'"):
        load_diffusets_vae_decoder(only_encoder)
    wrong = tmp_path / "wrong.pth"
    decoder = {**parts["decoder"], "3.attention.in_proj.weight": torch.zeros(1536, 256)}
    torch.save({"encoder": parts["encoder"], "decoder": decoder}, wrong)
    with pytest.raises(ConfigError, match=r"wrong.pth: key decoder.'3.attention.in_proj.weight' has shape"):
        load_diffusets_vae(wrong)
    missing = tmp_path / "missing.pth"
    encoder = {k: v for k, v in parts["encoder"].items() if k != "18.bias"}
    torch.save({"encoder": encoder, "decoder": parts["decoder"]}, missing)
    with pytest.raises(ConfigError, match=r"missing key encoder.'18.bias'"):
        load_diffusets_vae(missing)
