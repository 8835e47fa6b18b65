"""Loading published GEM / ECG-CoCa / ECG-R1 weights: names and shapes as in the published code, written out here
independently of ``gem.py``; outputs compared with a forward pass over the published names."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.ecg_encoder import EcgEncoder, EcgEncoderConfig
from uniecg_edge.model.gem import (
    load_gem,
    load_gem_ecg_tower,
    load_gem_projector,
    open_checkpoint,
    plan_tower,
    tower_config_from_checkpoint,
)
from uniecg_edge.model.projector import ProjectorConfig

# ---- the published ECG tower, from EcgTransformer (ecg_coca/open_clip/transformer.py) + coca_ViT-B-32.json ----
# conv1: Conv1d(lead_num, width, patch, stride=patch, bias=False); class_embedding (width);
# positional_embedding (seq/patch + 1, width); ln_pre; transformer.resblocks.i: ln_1, attn = nn.MultiheadAttention
# (in_proj_weight/bias, out_proj), ln_2, mlp.c_fc / mlp.c_proj; then ln_post (width) and proj (width, embed_dim),
# which GEM does not use (output_last_transformer_layer=True).


def published_tower_shapes(width=768, layers=12, leads=12, patch=50, seq=5000, mlp=3072, embed_dim=512):
    shapes = {
        "conv1.weight": (width, leads, patch),
        "class_embedding": (width,),
        "positional_embedding": (seq // patch + 1, width),
        "ln_pre.weight": (width,),
        "ln_pre.bias": (width,),
    }
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        shapes.update(
            {
                b + "ln_1.weight": (width,),
                b + "ln_1.bias": (width,),
                b + "attn.in_proj_weight": (3 * width, width),
                b + "attn.in_proj_bias": (3 * width,),
                b + "attn.out_proj.weight": (width, width),
                b + "attn.out_proj.bias": (width,),
                b + "ln_2.weight": (width,),
                b + "ln_2.bias": (width,),
                b + "mlp.c_fc.weight": (mlp, width),
                b + "mlp.c_fc.bias": (mlp,),
                b + "mlp.c_proj.weight": (width, mlp),
                b + "mlp.c_proj.bias": (width,),
            }
        )
    unused = {"ln_post.weight": (width,), "ln_post.bias": (width,), "proj": (width, embed_dim)}
    return shapes, unused


SMALL = {"width": 128, "layers": 2, "mlp": 512, "embed_dim": 32}  # heads = 128 // 64 = 2 by open_clip's rule


def published_tower_state(prefix: str = "", seed: int = 0, **dims) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    used, unused = published_tower_shapes(**{**SMALL, **dims})
    state = {}
    for name, shape in {**used, **unused}.items():
        scale = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight")) else 0.05
        offset = 1.0 if scale == 1.0 else 0.0
        state[prefix + name] = offset + (0.1 if scale == 1.0 else scale) * torch.randn(shape, generator=gen)
    return state


def published_tower_forward(state: dict[str, torch.Tensor], ecg: torch.Tensor, heads: int, prefix: str = ""):
    """EcgTransformer.forward(x, output_last_transformer_layer=True), over the published names."""
    s = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    width, _, patch = s["conv1.weight"].shape
    x = F.conv1d(ecg, s["conv1.weight"], stride=patch).permute(0, 2, 1)
    x = torch.cat([s["class_embedding"].view(1, 1, -1).expand(x.shape[0], 1, -1), x], dim=1)
    x = F.layer_norm(x + s["positional_embedding"], (width,), s["ln_pre.weight"], s["ln_pre.bias"])
    x = x.transpose(0, 1)  # NLD -> LND, as the published Transformer does
    layers = len({k.split(".")[2] for k in s if k.startswith("transformer.resblocks.")})
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        attn = torch.nn.MultiheadAttention(width, heads)
        attn.load_state_dict(
            {
                "in_proj_weight": s[b + "attn.in_proj_weight"],
                "in_proj_bias": s[b + "attn.in_proj_bias"],
                "out_proj.weight": s[b + "attn.out_proj.weight"],
                "out_proj.bias": s[b + "attn.out_proj.bias"],
            }
        )
        h = F.layer_norm(x, (width,), s[b + "ln_1.weight"], s[b + "ln_1.bias"])
        x = x + attn(h, h, h, need_weights=False)[0]
        h = F.layer_norm(x, (width,), s[b + "ln_2.weight"], s[b + "ln_2.bias"])
        h = F.gelu(F.linear(h, s[b + "mlp.c_fc.weight"], s[b + "mlp.c_fc.bias"]))
        x = x + F.linear(h, s[b + "mlp.c_proj.weight"], s[b + "mlp.c_proj.bias"])
    return x.transpose(0, 1)


# ---- the published projectors: LLaVA build_vision_projector 'mlp2x_gelu' = Sequential(Linear, GELU, Linear) ----


def gem_projector_state(in_dim=128, mid=48, out=64, seed=1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "model.ecg_projector.weight": 0.1 * torch.randn(mid, in_dim, generator=g),
        "model.ecg_projector.bias": 0.1 * torch.randn(mid, generator=g),
        "model.mm_projector.0.weight": 0.1 * torch.randn(out, mid, generator=g),
        "model.mm_projector.0.bias": 0.1 * torch.randn(out, generator=g),
        "model.mm_projector.2.weight": 0.1 * torch.randn(out, out, generator=g),
        "model.mm_projector.2.bias": 0.1 * torch.randn(out, generator=g),
    }


def llm_noise(seed=2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "model.embed_tokens.weight": torch.randn(50, 64, generator=g),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(64, 64, generator=g),
        "lm_head.weight": torch.randn(50, 64, generator=g),
        "model.vision_tower.vision_tower.vision_model.embeddings.class_embedding": torch.randn(64, generator=g),
    }


ECG = torch.randn(2, 12, 5000, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("prefix", ["", "ecg.", "model.ecg_tower.", "model.ecg_tower.ecg_tower."])
def test_tower_matches_the_published_forward_under_each_prefix(prefix: str) -> None:
    state = {**published_tower_state(prefix), **llm_noise()}
    encoder = load_gem_ecg_tower(state)
    assert encoder.config == EcgEncoderConfig(width=128, layers=2, heads=2, mlp_ratio=4.0)
    with torch.inference_mode():
        torch.testing.assert_close(encoder(ECG), published_tower_forward(state, ECG, 2, prefix), atol=2e-5, rtol=1e-4)


def test_head_count_is_a_parameter_that_changes_the_output() -> None:
    state = published_tower_state()
    encoder = load_gem_ecg_tower(state, heads=8)
    assert encoder.config.heads == 8
    with torch.inference_mode():
        out = encoder(ECG)
        torch.testing.assert_close(out, published_tower_forward(state, ECG, 8), atol=2e-5, rtol=1e-4)
        assert not torch.allclose(out, published_tower_forward(state, ECG, 2), atol=1e-3)


def test_open_clip_pickle_checkpoint_loads_with_weights_only(tmp_path) -> None:
    tower = published_tower_state("module.ecg.")
    path = tmp_path / "cpt_wfep_epoch_20.pt"
    torch.save({"epoch": 20, "name": "coca_ViT-B-32", "state_dict": tower}, path)
    encoder = load_gem_ecg_tower(path)
    with torch.inference_mode():
        torch.testing.assert_close(
            encoder(ECG), published_tower_forward(tower, ECG, 2, "module.ecg."), atol=2e-5, rtol=1e-4
        )


class NotAWeight:
    pass


def test_pickles_with_arbitrary_objects_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": published_tower_state(), "extra": NotAWeight()}, path)
    with pytest.raises(ConfigError, match=r"evil\.pt: not loadable with weights_only=True"):
        load_gem_ecg_tower(path)


def test_sharded_safetensors_folder_gives_tower_and_projector(tmp_path) -> None:
    tower = published_tower_state("model.ecg_tower.ecg_tower.")
    names = sorted(tower)
    projector = gem_projector_state()
    save_file(
        {k: tower[k] for k in names[: len(names) // 2]} | llm_noise(),
        str(tmp_path / "model-00001-of-00002.safetensors"),
    )
    save_file(
        {k: tower[k] for k in names[len(names) // 2 :]} | projector, str(tmp_path / "model-00002-of-00002.safetensors")
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_llama"}))
    encoder, proj = load_gem(tmp_path)
    assert proj.config == ProjectorConfig(in_dim=128, hidden_dim=64, out_dim=64, mid_dim=48)
    tokens = torch.randn(1, 101, 128)
    expected = F.linear(
        F.gelu(
            F.linear(
                F.linear(tokens, projector["model.ecg_projector.weight"], projector["model.ecg_projector.bias"]),
                projector["model.mm_projector.0.weight"],
                projector["model.mm_projector.0.bias"],
            )
        ),
        projector["model.mm_projector.2.weight"],
        projector["model.mm_projector.2.bias"],
    )
    with torch.inference_mode():
        torch.testing.assert_close(proj(tokens), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            encoder(ECG), published_tower_forward(tower, ECG, 2, "model.ecg_tower.ecg_tower."), atol=2e-5, rtol=1e-4
        )


@pytest.mark.parametrize("prefix, layout", [("model.ecg_projector.", "ecg-r1"), ("model.mm_projector.", "ecg-chat")])
def test_mlp2x_projector_layouts(prefix: str, layout: str, tmp_path) -> None:
    g = torch.Generator().manual_seed(5)
    state = {
        prefix + "0.weight": torch.randn(96, 128, generator=g),
        prefix + "0.bias": torch.randn(96, generator=g),
        prefix + "2.weight": torch.randn(96, 96, generator=g),
        prefix + "2.bias": torch.randn(96, generator=g),
    }
    save_file(state, str(tmp_path / f"{layout}.safetensors"))
    proj = load_gem_projector(tmp_path / f"{layout}.safetensors")
    assert proj.config == ProjectorConfig.mlp2x(128, 96) and proj.bridge is None
    x = torch.randn(2, 5, 128)
    expected = F.linear(
        F.gelu(F.linear(x, state[prefix + "0.weight"], state[prefix + "0.bias"])),
        state[prefix + "2.weight"],
        state[prefix + "2.bias"],
    )
    with torch.inference_mode():
        torch.testing.assert_close(proj(x), expected)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s.pop("transformer.resblocks.1.mlp.c_fc.bias"),
            "missing key transformer.resblocks.1.mlp.c_fc.bias",
        ),
        (lambda s: s.update({"ln_pre.weight": torch.ones(127)}), r"ln_pre.weight has shape \[127\], expected \[128\]"),
        (
            lambda s: s.update({"transformer.resblocks.0.ls_1.gamma": torch.ones(128)}),
            "unexpected tower key transformer.resblocks.0.ls_1.gamma",
        ),
        (lambda s: s.pop("transformer.resblocks.0.ln_1.weight"), "missing key transformer.resblocks.0.ln_1.weight"),
        (
            lambda s: [s.pop(k) for k in list(s) if k.startswith("transformer.resblocks.0.")],
            "missing key transformer.resblocks.0",
        ),
        (lambda s: s.pop("class_embedding"), "no ECG-CoCa tower"),
    ],
)
def test_mismatching_towers_raise_one_line_config_errors(edit, message: str, tmp_path) -> None:
    state = published_tower_state()
    edit(state)
    path = tmp_path / "tower.safetensors"
    save_file(state, str(path))
    with pytest.raises(ConfigError, match=message) as info:
        load_gem_ecg_tower(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_two_towers_need_an_explicit_prefix() -> None:
    state = {**published_tower_state("a."), **published_tower_state("b.", seed=9)}
    with pytest.raises(ConfigError, match="several ECG towers"):
        load_gem_ecg_tower(state)
    encoder = load_gem_ecg_tower(state, prefix="b.")
    with torch.inference_mode():
        torch.testing.assert_close(encoder(ECG), published_tower_forward(state, ECG, 2, "b."), atol=2e-5, rtol=1e-4)


def test_inconsistent_projector_widths_are_config_errors() -> None:
    state = gem_projector_state()
    state["model.mm_projector.0.weight"] = torch.randn(64, 47)
    with pytest.raises(ConfigError, match="mm_projector.0.weight has input width 47, expected 48"):
        load_gem_projector(state)
    with pytest.raises(ConfigError, match="no ECG projector"):
        load_gem_projector(llm_noise())


def _meta_state(shapes: dict[str, tuple[int, ...]], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + name: torch.empty(shape, device="meta") for name, shape in shapes.items()}


def test_full_size_gem_names_map_onto_the_gem_encoder_without_allocating() -> None:
    used, unused = published_tower_shapes()  # full GEM size: 768 wide, 12 layers, 12 x 5000, patch 50
    # model-facts §2.2: 85,595,136 on the used path, 85,989,888 with ln_post and proj
    assert sum(torch.Size(s).numel() for s in used.values()) == 85_595_136
    assert sum(torch.Size(s).numel() for s in {**used, **unused}.values()) == 85_989_888

    prefix = "model.ecg_tower.ecg_tower."
    ckpt = open_checkpoint(_meta_state({**used, **unused}, prefix))
    config = tower_config_from_checkpoint(ckpt, prefix)
    assert config == EcgEncoderConfig.gem()
    plan = plan_tower(ckpt, prefix, config)
    with torch.device("meta"):
        target = {k: tuple(v.shape) for k, v in EcgEncoder(config).state_dict().items()}
    assert set(plan) == set(target)
    assert all(ckpt.shape(plan[name]) == shape for name, shape in target.items())
    assert set(plan.values()) == {prefix + name for name in used}

    encoder = load_gem_ecg_tower(_meta_state({**used, **unused}, prefix))
    assert encoder.pos_embed.is_meta and sum(p.numel() for p in encoder.parameters()) == 85_595_136
    projector = load_gem_projector(
        _meta_state(
            {
                "ecg_projector.weight": (1024, 768),
                "ecg_projector.bias": (1024,),
                "mm_projector.0.weight": (4096, 1024),
                "mm_projector.0.bias": (4096,),
                "mm_projector.2.weight": (4096, 4096),
                "mm_projector.2.bias": (4096,),
            },
            "model.",
        )
    )
    assert projector.config == ProjectorConfig.gem()
