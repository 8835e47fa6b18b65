from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from uniecg_edge.dsp import analyze_record
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.model.uniecg import PromptConfig
from uniecg_edge.record import EcgRecord
from uniecg_edge.training.batching import IGNORE, Batcher, generate_forward, interpret_forward
from uniecg_edge.training.components import Vocabulary, build_components
from uniecg_edge.training.dataset import ExampleSampler
from uniecg_edge.training.presets import SMOKE_SIZES
from uniecg_edge.training.reports import REPORT_STYLES, write_report
from uniecg_edge.training.stage1 import EncoderProbe, grounded_questions, probe_loss


@pytest.fixture(scope="module")
def tokenizer():
    from uniecg_edge.model.tokenizer import train_tokenizer

    sampler = ExampleSampler(0)
    corpus = [write_report(sampler.example("corpus", i).truth, style=s) for i in range(20) for s in REPORT_STYLES]
    corpus += [PromptConfig().interpret_prompt(), PromptConfig().generate_prompt("")]
    return train_tokenizer(corpus, vocab_size=600, k=SMOKE_SIZES.num_ecg_tokens)


def test_batches_lay_out_prompts_as_the_pipeline_does_with_loss_on_the_answer_only(tokenizer) -> None:
    batcher = Batcher(tokenizer, SMOKE_SIZES.num_ecg_tokens)
    prompt = PromptConfig().interpret_prompt()
    assert batcher.interpret_ids == [tokenizer.bos_token_id, *tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    examples = ExampleSampler(1).examples("train", 0, 2)
    batch = batcher.interpret([e.ecg for e in examples], [e.report for e in examples])
    n_prompt = len(batcher.interpret_ids)
    for row, ex in enumerate(examples):
        labelled = batch.labels[row][batch.labels[row] != IGNORE].tolist()
        assert labelled == batcher.answer_ids(ex.report) and labelled[-1] == tokenizer.eos_token_id
        assert (batch.labels[row, :n_prompt] == IGNORE).all()
        assert tokenizer.decode(labelled, skip_special_tokens=True).strip() == ex.report
    gen = batcher.generate(["sinus rhythm", "atrial fibrillation with a ventricular rate of 120 bpm"])
    for row in range(2):
        ids = gen.input_ids[row, gen.gen_positions[row]].tolist()
        assert ids == batcher.gen_ids
        assert gen.labels[row][gen.labels[row] != IGNORE].tolist() == batcher.gen_ids


def test_a_few_stage1_steps_reduce_the_loss_on_a_fixed_batch(tokenizer) -> None:
    torch.manual_seed(0)
    sizes = dataclasses.replace(SMOKE_SIZES, llm_hidden=64, llm_intermediate=128, encoder_width=48)
    parts = build_components(sizes, Vocabulary.of(tokenizer), seed=0)
    batcher = Batcher(tokenizer, sizes.num_ecg_tokens)
    examples = ExampleSampler(2).examples("train", 0, 2)
    batch = batcher.interpret([e.ecg for e in examples], [e.report for e in examples])
    probe = EncoderProbe(sizes.encoder_width)
    modules = [parts.ecg_encoder, parts.projector, parts.llm, probe]
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    for m in modules:
        m.train()
    losses = []
    for _ in range(20):
        out, tokens = interpret_forward(parts.ecg_encoder, parts.projector, parts.llm, batch, batcher.ecg_token_id)
        loss = out.loss + 0.3 * probe_loss(probe, tokens, examples)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(out.loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.6 * losses[0], losses


def test_generate_forward_returns_the_states_at_the_ecg_tokens(tokenizer) -> None:
    parts = build_components(SMOKE_SIZES, Vocabulary.of(tokenizer), seed=0)
    batcher = Batcher(tokenizer, SMOKE_SIZES.num_ecg_tokens)
    requests = ["sinus rhythm", "third-degree AV block with a slow junctional escape rhythm"]
    batch = batcher.generate(requests)
    with torch.no_grad():
        _, states = generate_forward(parts.llm, batch)
        # the short row is right-padded: its states must equal those of the row run alone
        alone = batcher.generate(requests[:1])
        _, states_alone = generate_forward(parts.llm, alone)
    assert states.shape == (2, SMOKE_SIZES.num_ecg_tokens, SMOKE_SIZES.llm_hidden)
    assert torch.allclose(states[0], states_alone[0], atol=1e-5)


def test_grounded_rows_carry_the_dsp_line_and_keep_the_loss_on_the_answer(tokenizer) -> None:
    batcher = Batcher(tokenizer, SMOKE_SIZES.num_ecg_tokens)
    examples = ExampleSampler(1).examples("train", 0, 6)
    grounded = grounded_questions(batcher.prompt.interpret_question, examples, 0.5, np.random.default_rng(0))
    questions = [q for q, _ in grounded]
    assert any(q is None for q in questions) and any(q is not None for q in questions)
    reports = [write_report(truth, style="structured") for _, truth in grounded]
    batch = batcher.interpret([e.ecg for e in examples], reports, questions)
    for row, (ex, question) in enumerate(zip(examples, questions, strict=True)):
        labelled = batch.labels[row][batch.labels[row] != IGNORE].tolist()
        assert labelled == batcher.answer_ids(reports[row])
        ids = batch.input_ids[row][batch.attention_mask[row] == 1].tolist()
        prompt = ids[: len(ids) - len(labelled)]
        if question is None:
            assert prompt == batcher.interpret_ids
        else:
            assert question.startswith("Measured: ventricular rate ") and question.endswith(
                PromptConfig().interpret_question)
            rate = int(question.split("rate ")[1].split(" bpm")[0])
            measured = analyze_record(EcgRecord(ex.ecg, fs=500.0, leads=STANDARD_LEADS, name="x"))
            assert rate == round(measured.measurements.heart_rate_bpm)  # the DSP's figure, not the truth
            assert f"rate of {rate} bpm" in reports[row]  # and the report repeats it
            expected = tokenizer(PromptConfig().interpret_prompt(question), add_special_tokens=False)["input_ids"]
            assert prompt == [tokenizer.bos_token_id, *expected]
    default = batcher.prompt.interpret_question
    plain = grounded_questions(default, examples, 0.0, np.random.default_rng(0))
    assert plain == [(None, ex.truth) for ex in examples]


def test_swapped_ecgs_show_the_counterpart_rhythm_only_under_an_evidence_line() -> None:
    from uniecg_edge.training.stage1 import swapped_ecgs

    sampler = ExampleSampler(4)
    examples = sampler.examples("train", 100, 12)
    line = [("Measured: ventricular rate 70 bpm.\nQ", ex.truth) for ex in examples]
    plain = [(None, ex.truth) for ex in examples]
    rng = np.random.default_rng(0)
    untouched = swapped_ecgs(sampler, examples, line, 100, 0.0, rng)
    assert all(a is ex.ecg for a, ex in zip(untouched, examples, strict=True))
    assert rng.random() == np.random.default_rng(0).random()  # a zero fraction draws nothing
    no_line = swapped_ecgs(sampler, examples, plain, 100, 1.0, rng)
    assert all(a is ex.ecg for a, ex in zip(no_line, examples, strict=True))
    shown = swapped_ecgs(sampler, examples, line, 100, 1.0, rng)
    rhythms = [ex.truth["rhythm"] for ex in examples]
    assert {"sinus", "afib"} & set(rhythms)  # the draw holds rhythms with a counterpart
    for ecg, ex, rhythm in zip(shown, examples, rhythms, strict=True):
        assert (ecg is ex.ecg) is (rhythm not in ("sinus", "afib"))
        assert ecg.shape == ex.ecg.shape
