"""The decoder graph for Llama and Qwen2 (tiny configs): prefill with an empty past and decode steps with a past,
checked against the transformers model itself (its own DynamicCache), not only against our wrapper."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from uniecg_edge.export.onnx_export import export_graph
from uniecg_edge.export.onnx_generate import GraphRunner, OnnxDecoder, splice_ecg_embeddings
from uniecg_edge.export.spec import graph_specs
from uniecg_edge.model.llm import build_llm, tiny_llama, tiny_qwen2
from uniecg_edge.model.splice import splice_ecg_embeddings as torch_splice

PRESETS = {"llama": tiny_llama, "qwen2": tiny_qwen2}


@pytest.fixture(scope="module", params=sorted(PRESETS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(3)
    llm = build_llm(PRESETS[request.param](vocab_size=300))
    model = SimpleNamespace(llm=llm)  # the decoder spec only needs the language model
    spec = graph_specs(["decoder"])[0]
    result = export_graph(spec, model, tmp_path_factory.mktemp(f"decoder-{request.param}"))
    return request.param, llm, result


def test_graph_names_and_dynamic_axes_follow_the_optimum_convention(exported) -> None:
    _, llm, result = exported
    graph = onnx.load(str(result.path)).graph
    layers = llm.config.num_hidden_layers
    names = [i.name for i in graph.input]
    assert names[:3] == ["inputs_embeds", "attention_mask", "position_ids"]
    assert names[3:] == [f"past_key_values.{i}.{k}" for i in range(layers) for k in ("key", "value")]
    outputs = [o.name for o in graph.output]
    presents = [f"present.{i}.{k}" for i in range(layers) for k in ("key", "value")]
    assert outputs == ["logits", "hidden_states", *presents]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["attention_mask"] == ["batch", "total_seq"]
    assert dims["past_key_values.0.key"] == ["batch", 2, "past", 16]
    assert result.data_files == [] and not result.external_data  # small graphs keep their weights inside


def _hf_step(llm, embeds, mask, positions, cache):
    with torch.no_grad():
        out = llm(inputs_embeds=torch.from_numpy(embeds), attention_mask=torch.from_numpy(mask),
                  position_ids=torch.from_numpy(positions), past_key_values=cache, use_cache=True,
                  output_hidden_states=True)
    return out


@pytest.mark.parametrize("batch", [1, 2])
def test_prefill_then_decode_steps_match_transformers(exported, batch: int) -> None:
    _, llm, result = exported
    decoder = OnnxDecoder(GraphRunner.from_file(result.path))
    rng = np.random.default_rng(batch)
    hidden = llm.config.hidden_size
    seq = 7
    embeds = rng.standard_normal((batch, seq, hidden)).astype(np.float32)
    mask = np.ones((batch, seq), np.int64)
    if batch == 2:
        mask[1, :2] = 0  # left padding in the second row
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    logits, states, past = decoder(embeds, mask, positions, decoder.empty_past(batch))  # past length 0
    out = _hf_step(llm, embeds, mask, positions, None)
    cache = out.past_key_values
    real = mask.astype(bool)  # padded positions attend to nothing: their outputs are undefined in both
    assert np.abs(logits - out.logits.numpy())[real].max() < 1e-4
    assert np.abs(states - out.hidden_states[-1].numpy())[real].max() < 1e-4
    for layer in range(llm.config.num_hidden_layers):
        for kind, onnx_kv in (("keys", past[2 * layer]), ("values", past[2 * layer + 1])):
            hf_kv = getattr(cache.layers[layer], kind).numpy()
            assert np.abs(onnx_kv - hf_kv).transpose(0, 2, 1, 3)[real].max() < 1e-5
    for _step in range(3):  # decode steps with a growing past
        step = rng.standard_normal((batch, 1, hidden)).astype(np.float32)
        mask = np.concatenate([mask, np.ones((batch, 1), np.int64)], axis=1)
        positions = positions[:, -1:] + 1
        logits, states, past = decoder(step, mask, positions, past)
        out = _hf_step(llm, step, mask, positions, cache)
        cache = out.past_key_values
        assert logits.shape == (batch, 1, llm.config.vocab_size)
        assert past[0].shape[2] == mask.shape[1]
        assert np.abs(logits - out.logits.numpy()).max() < 1e-4
        assert np.abs(states - out.hidden_states[-1].numpy()).max() < 1e-4


def test_numpy_splice_matches_the_torch_splice() -> None:
    rng = np.random.default_rng(0)
    ids = np.array([[0, 0, 1, 5, 9, 3, 7], [1, 5, 6, 9, 8, 4, 2]], np.int64)  # <ecg> = 9; row 0 left-padded
    mask = (ids != 0).astype(np.int64)
    embeds = rng.standard_normal((2, 7, 4)).astype(np.float32)
    ecg = rng.standard_normal((2, 3, 4)).astype(np.float32)
    got = splice_ecg_embeddings(ids, embeds, ecg, 9, mask)
    want = torch_splice(torch.from_numpy(ids), torch.from_numpy(embeds), torch.from_numpy(ecg), 9,
                        torch.from_numpy(mask))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    with pytest.raises(ValueError, match="row 1"):
        splice_ecg_embeddings(np.array([[9, 1], [1, 2]]), embeds[:, :2], ecg, 9)


def test_graph_files_are_self_describing(exported) -> None:
    _, _, result = exported
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model)
    assert {o.domain: o.version for o in model.opset_import}.get("", 0) == 18
