"""Causal LM: build Llama / Qwen2 from config dicts, seeded determinism, inputs_embeds + hidden states,
safetensors-only loading, embedding resize for new tokens, Qwen2-0.5B shape (on the meta device)."""

from __future__ import annotations

import pytest
import torch

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.llm import (
    build_llm,
    hidden_size,
    llm_config,
    load_llm,
    qwen2_0_5b,
    resize_for_tokenizer,
    tiny_llama,
    tiny_qwen2,
)

PRESETS = {"llama": tiny_llama, "qwen2": tiny_qwen2}


def _build(name: str, seed: int = 0, vocab_size: int = 128):
    torch.manual_seed(seed)
    return build_llm(PRESETS[name](vocab_size=vocab_size))


@pytest.mark.parametrize("name, cls", [("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM")])
def test_forward_with_inputs_embeds_and_hidden_states(name: str, cls: str) -> None:
    model = _build(name)
    assert type(model).__name__ == cls
    assert hidden_size(model) == 64
    assert next(model.parameters()).dtype == torch.float32
    embeds = torch.randn(2, 7, 64)
    mask = torch.ones(2, 7, dtype=torch.long)
    with torch.inference_mode():
        out = model(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
    assert out.logits.shape == (2, 7, 128)
    assert len(out.hidden_states) == 2 + 1
    assert out.hidden_states[-1].shape == (2, 7, 64)


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_inputs_embeds_path_equals_input_ids_path(name: str) -> None:
    model = _build(name)
    ids = torch.randint(0, 128, (1, 9))
    with torch.inference_mode():
        from_ids = model(input_ids=ids).logits
        from_embeds = model(inputs_embeds=model.get_input_embeddings()(ids)).logits
    torch.testing.assert_close(from_embeds, from_ids)


def test_initialisation_follows_the_torch_seed() -> None:
    a, b, c = _build("llama", seed=3), _build("llama", seed=3), _build("llama", seed=4)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_save_and_load_gives_identical_logits(name: str, tmp_path) -> None:
    model = _build(name)
    model.save_pretrained(tmp_path / "llm", safe_serialization=True)
    assert not list((tmp_path / "llm").glob("*.bin"))
    loaded = load_llm(tmp_path / "llm")
    ids = torch.randint(0, 128, (2, 6))
    with torch.inference_mode():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_pickle_only_or_missing_checkpoints_are_refused(tmp_path) -> None:
    model = _build("llama")
    folder = tmp_path / "pickled"
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="safetensors"):
        load_llm(folder)
    with pytest.raises(ConfigError, match="config.json"):
        load_llm(tmp_path / "missing")


class _SizedTokenizer:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_resize_sets_new_rows_to_the_mean_row(name: str) -> None:
    model = _build(name)
    tied = model.config.tie_word_embeddings
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()

    assert resize_for_tokenizer(model, _SizedTokenizer(133)) == 5
    new_in = model.get_input_embeddings().weight
    new_out = model.get_output_embeddings().weight
    assert new_in.shape == (133, 64) and new_out.shape == (133, 64)
    assert model.config.vocab_size == 133
    assert torch.equal(new_in[:128], old_in)
    torch.testing.assert_close(new_in[128:], old_in.mean(0, keepdim=True).expand(5, -1))
    torch.testing.assert_close(new_out[128:], old_out.mean(0, keepdim=True).expand(5, -1))
    assert (new_in.data_ptr() == new_out.data_ptr()) == tied
    with torch.inference_mode():
        assert model(input_ids=torch.tensor([[1, 130, 132]])).logits.shape == (1, 3, 133)
    assert resize_for_tokenizer(model, _SizedTokenizer(120)) == 0  # never shrinks


@pytest.mark.parametrize(
    "config, message", [({"hidden_size": 8}, "model_type"), ({"model_type": "no-such-arch"}, "no-such-arch")]
)
def test_bad_configs_raise_config_error(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_llm(config)


def test_qwen2_0_5b_preset_has_the_published_size() -> None:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(llm_config(qwen2_0_5b()))
    # Qwen2-0.5B: 494,032,768 parameters with tied input/output embeddings
    assert sum(p.numel() for p in model.parameters()) == 494_032_768
    assert hidden_size(model) == 896
