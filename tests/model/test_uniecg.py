from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import ConfigError
from uniecg_edge.model.default import build_default_model
from uniecg_edge.model.uniecg import UniEcgModel, checkpoint_sha256
from uniecg_edge.preprocess import to_model_input
from uniecg_edge.wfdb_io import read_record


def test_default_model_is_deterministic_for_its_seed(tmp_path: Path) -> None:
    a = build_default_model(seed=0).save_pretrained(tmp_path / "a")
    b = build_default_model(seed=0).save_pretrained(tmp_path / "b")
    c = build_default_model(seed=1).save_pretrained(tmp_path / "c")
    assert checkpoint_sha256(a) == checkpoint_sha256(b) != checkpoint_sha256(c)


def test_round_trip_gives_identical_outputs(tiny_model_dir: Path) -> None:
    model = UniEcgModel.from_pretrained(tiny_model_dir)
    again = UniEcgModel.from_pretrained(tiny_model_dir)
    ecg, _ = to_model_input(read_record(EXAMPLE_RECORD))
    x = torch.from_numpy(ecg)[None]
    with torch.no_grad():
        emb = model.encode_ecg(x)
        assert emb.shape[0] == 1 and emb.shape[2] == model.llm.config.hidden_size
        torch.testing.assert_close(emb, again.encode_ecg(x), rtol=0, atol=0)
        states = torch.randn(2, model.config.num_ecg_tokens, model.llm.config.hidden_size)
        cond = model.condition_from_states(states)
        assert cond.shape == (2, 1, model.unet.config.cond_dim)
        torch.testing.assert_close(cond, again.condition_from_states(states), rtol=0, atol=0)
        latents = torch.randn(2, 4, 128)
        ecg_out = model.decode_latents(latents)
        assert ecg_out.shape == (2, 12, 1024)
        torch.testing.assert_close(ecg_out, again.decode_latents(latents), rtol=0, atol=0)
    assert json.loads((tiny_model_dir / "config.json").read_text())["trained"] is False


def test_special_tokens_are_single_tokens(tiny_model_dir: Path) -> None:
    model = UniEcgModel.from_pretrained(tiny_model_dir)
    ids = model.tokenizer("USER: <ecg>\n[ECG_0][ECG_1]", add_special_tokens=False)["input_ids"]
    assert ids.count(model.ecg_token_id) == 1
    assert model.gen_token_ids[0] in ids and model.gen_token_ids[1] in ids
    assert len(set(model.gen_token_ids)) == model.config.num_ecg_tokens


@pytest.mark.parametrize("part", ["llm", "tokenizer", "diffusion/unet", "ecg_encoder"])
def test_incomplete_checkpoint_is_refused_by_name(tiny_model_dir: Path, tmp_path: Path, part: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / part)
    with pytest.raises(ConfigError, match=part):
        UniEcgModel.from_pretrained(broken)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.json missing"):
        UniEcgModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    for part in ("ecg_encoder", "projector", "gen_head", "llm", "tokenizer", "diffusion/unet", "diffusion/vae"):
        (tmp_path / part).mkdir(parents=True)
    with pytest.raises(ConfigError, match="invalid JSON"):
        UniEcgModel.from_pretrained(tmp_path)


def test_parameter_counts_cover_every_component(tiny_model_dir: Path) -> None:
    counts = UniEcgModel.from_pretrained(tiny_model_dir).parameter_counts()
    assert set(counts) == {"ecg_encoder", "projector", "llm", "gen_head", "unet", "vae_decoder"}
    assert all(n > 0 for n in counts.values())
    assert np.sum(list(counts.values())) < 25_000_000
