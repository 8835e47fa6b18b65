"""The runtime's token loop: same greedy tokens as the torch pipeline, on every backend path; sampling; stops;
the [ECG]-token hand-over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import ConfigError
from uniecg_edge.model.pipeline import TorchPipeline
from uniecg_edge.preprocess import to_model_input
from uniecg_edge.runtime import EdgeRuntime, SamplingConfig
from uniecg_edge.runtime.backends.ort_iobinding import IoBindingKvDecoder
from uniecg_edge.runtime.generation import HostKvDecoder, TokenPicker
from uniecg_edge.runtime.prompt import interpret_prompt
from uniecg_edge.wfdb_io import read_record

TOKENS = 32


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> TorchPipeline:
    return TorchPipeline.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return to_model_input(read_record(EXAMPLE_RECORD))[0]


@pytest.fixture(scope="module")
def ort_runtime(fp32_bundle: Path) -> EdgeRuntime:
    return EdgeRuntime.from_bundle(fp32_bundle, backend="onnxruntime")


def _prompt(runtime: EdgeRuntime) -> str:
    return interpret_prompt(runtime.config["prompt"])


def test_onnxruntime_greedy_tokens_equal_torch_on_an_fp32_bundle(ort_runtime: EdgeRuntime, pipeline: TorchPipeline,
                                                                 ecg: np.ndarray) -> None:
    prompt = _prompt(ort_runtime)
    assert prompt == pipeline.model.config.prompt.interpret_prompt()
    ours, timings = ort_runtime.respond(prompt, ecg, max_new_tokens=TOKENS)
    reference, _ = pipeline.respond(prompt, ecg, max_new_tokens=TOKENS)
    assert len(ours.token_ids) == TOKENS and ours.token_ids == reference.token_ids
    assert ours.stop_reason == reference.stop_reason
    assert ort_runtime.codec.decode(ours.token_ids) == pipeline._decode_text(reference.token_ids)
    assert isinstance(ort_runtime._kv_decoder(1), HostKvDecoder)  # CPU: plain run, host arrays
    assert timings["ecg_encoder_s"] > 0 and timings["prefill_s"] > 0 and timings["decode_tokens"] == TOKENS


def test_io_binding_path_gives_the_same_tokens(fp32_bundle: Path, ort_runtime: EdgeRuntime, ecg: np.ndarray) -> None:
    bound = EdgeRuntime.from_bundle(fp32_bundle, backend="onnxruntime", io_binding=True)
    ours, _ = bound.respond(_prompt(bound), ecg, max_new_tokens=TOKENS)
    plain, _ = ort_runtime.respond(_prompt(ort_runtime), ecg, max_new_tokens=TOKENS)
    assert isinstance(bound._kv_decoder(1), IoBindingKvDecoder)
    assert ours.token_ids == plain.token_ids
    assert bound.provenance()["backend_details"]["io_binding"] is True


def test_torch_backend_runs_the_same_loop_on_the_reference_modules(fp32_bundle: Path, pipeline: TorchPipeline,
                                                                   ecg: np.ndarray) -> None:
    reference = EdgeRuntime.from_bundle(fp32_bundle, backend="torch")
    ours, _ = reference.respond(_prompt(reference), ecg, max_new_tokens=TOKENS)
    expected, _ = pipeline.respond(_prompt(reference), ecg, max_new_tokens=TOKENS)
    assert ours.token_ids == expected.token_ids
    assert reference.provenance()["backend"] == "torch"


def test_the_torch_backend_refuses_another_checkpoint(fp32_bundle: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    other = tmp_path / "model"
    shutil.copytree(tiny_model_dir, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace('"name"', '"name" ', 1))
    with pytest.raises(ConfigError, match="not the checkpoint .* was exported from"):
        EdgeRuntime.from_bundle(fp32_bundle, backend="torch", model_dir=other)


def test_seeded_sampling_repeats_and_top_p_near_zero_is_greedy(ort_runtime: EdgeRuntime, ecg: np.ndarray) -> None:
    prompt = _prompt(ort_runtime)
    greedy, _ = ort_runtime.respond(prompt, ecg, max_new_tokens=16)
    hot = [ort_runtime.respond(prompt, ecg, max_new_tokens=16, sampling=SamplingConfig(temperature=1.5, seed=s))[0]
           for s in (7, 7, 8)]
    assert hot[0].token_ids == hot[1].token_ids
    assert hot[0].token_ids != hot[2].token_ids and hot[0].token_ids != greedy.token_ids
    narrow = SamplingConfig(temperature=1.5, top_p=1e-6, seed=7)
    assert ort_runtime.respond(prompt, ecg, max_new_tokens=16, sampling=narrow)[0].token_ids == greedy.token_ids


def test_top_p_keeps_the_smallest_set_holding_the_mass() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    picks = TokenPicker(SamplingConfig(temperature=1.0, top_p=0.7, seed=0))
    drawn = {picks(logits) for _ in range(300)}
    assert drawn == {0, 1}  # 0.5 < 0.7 needs the second token; 0.8 >= 0.7 stops there
    with pytest.raises(ConfigError, match="top_p"):
        SamplingConfig(top_p=0.0)
    with pytest.raises(ConfigError, match="temperature"):
        SamplingConfig(temperature=-1.0)


def test_stop_tokens_and_the_token_limit(ort_runtime: EdgeRuntime, ecg: np.ndarray) -> None:
    prompt = _prompt(ort_runtime)
    greedy, _ = ort_runtime.respond(prompt, ecg, max_new_tokens=8)
    assert len(greedy.token_ids) == 8 and greedy.stop_reason == "max_new_tokens"
    third = greedy.token_ids[2]
    stopped, _ = ort_runtime.respond(prompt, ecg, max_new_tokens=8, stop_token_ids=[third])
    assert stopped.stop_reason == "stop_token"
    assert stopped.token_ids == greedy.token_ids[:greedy.token_ids.index(third)]


class _Bias(nn.Module):
    """Adds a large logit to one token so the model 'chooses' it."""

    def __init__(self, head: nn.Module, token_id: int) -> None:
        super().__init__()
        self.head, self.token_id = head, token_id

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden)
        logits[..., self.token_id] += 1e4
        return logits


def test_emitted_ecg_tokens_hand_their_states_to_the_generator(fp32_bundle: Path, tiny_model_dir: Path) -> None:
    runtime = EdgeRuntime.from_bundle(fp32_bundle, backend="torch")
    pipe = TorchPipeline.from_pretrained(tiny_model_dir)
    runtime.warmup(("embed_tokens", "decoder"))  # graph shapes read the LM head before it is wrapped
    for model in (runtime.backend.model, pipe.model):  # type: ignore[attr-defined]
        model.llm.lm_head = _Bias(model.llm.lm_head, model.gen_token_ids[0])  # type: ignore[arg-type]
    states, _, how = runtime.condition_states("normal sinus rhythm")
    result, _ = pipe.respond(pipe.model.config.prompt.generate_prompt("normal sinus rhythm"), None, max_new_tokens=32)
    assert how == "emitted" and result.stop_reason == "ecg_tokens" and result.ecg_token_states is not None
    assert states.shape == tuple(result.ecg_token_states.shape)
    np.testing.assert_allclose(states, result.ecg_token_states.numpy(), rtol=1e-5, atol=1e-5)
