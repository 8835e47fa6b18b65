"""LLM-side distillation: the student builder, the KD loss and a few optimisation steps on a fixed batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.uniecg import UniEcgModel
from uniecg_edge.training.distill import (
    DistillExample,
    KdConfig,
    KdObjective,
    collate,
    kd_losses,
    llm_outputs,
    teacher_outputs,
)
from uniecg_edge.training.student import StudentConfig, build_student, parameter_summary

CONFIGS = Path(__file__).resolve().parents[2] / "uniecg_edge" / "training" / "configs"
SMALL_LLM = {"from_teacher": True, "hidden_size": 32, "intermediate_size": 86, "num_hidden_layers": 1}


@pytest.fixture(scope="module")
def teacher(tiny_model_dir: Path) -> UniEcgModel:
    torch.set_num_threads(1)
    return UniEcgModel.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def examples() -> list[DistillExample]:
    rng = np.random.default_rng(0)
    reports = ["Sinus rhythm with a ventricular rate of 72 bpm.", "Atrial fibrillation, ventricular rate 110 bpm.",
               "Sinus bradycardia at 52 bpm; the QRS duration is 90 ms."]
    return [DistillExample(ecg=(0.2 * rng.standard_normal((12, 5000))).astype(np.float32), report=r,
                           sex="MF"[i % 2], age=40.0 + 10 * i, hr=float(72 + 20 * i)) for i, r in enumerate(reports)]


def test_collate_labels_cover_the_report_and_the_ecg_tokens(teacher: UniEcgModel, examples) -> None:
    batch = collate(teacher, examples)
    k = len(teacher.gen_token_ids)
    assert (batch.generate_ids[:, -k:] == torch.tensor(teacher.gen_token_ids)).all()  # left padding: [ECG] last
    assert (batch.generate_labels[:, -k:] == torch.tensor(teacher.gen_token_ids)).all()
    assert (batch.generate_labels[:, :-k] == -100).all()
    assert ((batch.interpret_ids == teacher.ecg_token_id).sum(dim=1) == 1).all()
    for row, ex in enumerate(examples):
        labelled = batch.interpret_labels[row][batch.interpret_labels[row] != -100].tolist()
        assert labelled[-1] == teacher.eos_token_id
        assert teacher.tokenizer.decode(labelled[:-1]).strip() == ex.report


def test_kd_loss_is_zero_for_the_teacher_itself_and_positive_for_a_student(teacher: UniEcgModel, examples) -> None:
    batch = collate(teacher, examples)
    targets = teacher_outputs(teacher, batch)
    cfg = KdConfig(alpha=0.5, temperature=2.0)
    clone, projection = build_student(teacher, StudentConfig(llm={"from_teacher": True}))
    student, _ = build_student(teacher, StudentConfig(llm=SMALL_LLM))
    assert projection is None
    with torch.no_grad():
        same = kd_losses(llm_outputs(clone.eval(), batch), targets, cfg)
        other = kd_losses(llm_outputs(student.eval(), batch), targets, cfg)
        clone.gen_head.fc2.weight.add_(0.05)
        nudged = kd_losses(llm_outputs(clone, batch), targets, cfg)
    assert float(same["kl"]) < 1e-7 and float(same["gen"]) < 1e-6 and float(same["kd"]) < 1e-6
    assert float(same["ce"]) > 1.0  # CE against the labels is not part of the KD term
    assert float(other["kl"]) > 1e-4 and float(other["gen"]) > 1e-2
    assert float(nudged["gen"]) > 1e-4 and float(nudged["kl"]) < 1e-7


def test_a_few_steps_lower_the_kd_loss_on_a_fixed_batch(teacher: UniEcgModel, examples) -> None:
    batch = collate(teacher, examples)
    targets = teacher_outputs(teacher, batch)
    student, projection = build_student(teacher, StudentConfig(llm=SMALL_LLM), seed=3)
    objective = KdObjective(student, projection, KdConfig(alpha=0.9, temperature=1.0))
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for _ in range(12):
        losses = objective(batch, targets)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    assert history[-1]["kd"] < 0.5 * history[0]["kd"]
    assert history[-1]["total"] < history[0]["total"]
    assert not any(p.grad is not None for p in student.unet.parameters())  # the diffusion decoder stays frozen


def test_own_encoder_is_distilled_through_a_learned_projection(teacher: UniEcgModel, examples) -> None:
    cfg = StudentConfig(llm=SMALL_LLM, ecg_encoder={"width": 32, "layers": 1, "heads": 4})
    student, projection = build_student(teacher, cfg)
    assert projection is not None and projection.in_features == 32 and projection.out_features == 64
    assert student.projector.config.in_dim == 32 and student.projector.config.out_dim == 32
    assert all(p.requires_grad for p in student.ecg_encoder.parameters())
    batch = collate(teacher, examples[:2])
    targets = teacher_outputs(teacher, batch)
    objective = KdObjective(student, projection, KdConfig())
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=3e-3)
    first = last = None
    for _ in range(6):
        losses = objective(batch, targets)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        first = first if first is not None else float(losses["enc"].detach())
        last = float(losses["enc"].detach())
    assert first > 0 and last < first


def test_reused_encoder_is_the_teachers_and_frozen(teacher: UniEcgModel) -> None:
    student, _ = build_student(teacher, StudentConfig(llm=SMALL_LLM))
    for (name, p), q in zip(student.ecg_encoder.named_parameters(), teacher.ecg_encoder.parameters(),
                                strict=True):
        assert torch.equal(p, q) and not p.requires_grad, name
    assert student.tokenizer is teacher.tokenizer
    assert student.llm.get_output_embeddings().weight.shape[0] == teacher.llm.get_output_embeddings().weight.shape[0]
    assert student.gen_head.config.cond_dim == teacher.unet.config.cond_dim


def test_student_layers_start_from_spread_teacher_layers(teacher: UniEcgModel) -> None:
    student, _ = build_student(teacher, StudentConfig(llm={"from_teacher": True, "num_hidden_layers": 1}))
    s = student.llm.state_dict()
    t = teacher.llm.state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(s[key], t[key])
    assert torch.equal(s["model.embed_tokens.weight"], t["model.embed_tokens.weight"])
    fresh, _ = build_student(teacher, StudentConfig(llm={"from_teacher": True, "num_hidden_layers": 1},
                                                    init_from_teacher=False))
    assert not torch.equal(fresh.llm.state_dict()[key], t[key])


def test_parameter_summary_counts_and_ratios(teacher: UniEcgModel) -> None:
    cfg = StudentConfig.from_file(CONFIGS / "student_tiny.json")
    student, _ = build_student(teacher, cfg)
    summary = parameter_summary(teacher, student)
    assert summary["teacher_total"] == sum(p.numel() for p in teacher.parameters())
    assert summary["student_total"] == sum(p.numel() for p in student.parameters())
    assert summary["ratio_llm"] == pytest.approx(summary["teacher"]["llm"] / summary["student"]["llm"])
    assert summary["ratio_llm"] > 2.5 and summary["student"]["unet"] == summary["teacher"]["unet"]


def test_example_configs_parse() -> None:
    for path in sorted(CONFIGS.glob("*.json")):
        cfg = StudentConfig.from_file(path)
        assert cfg.name and (cfg.llm or cfg.init_from)


@pytest.mark.parametrize(("data", "needle"), [
    ({"name": "x"}, "missing 'llm'"),
    ({"llm": {"from_teacher": True}, "colour": "red"}, "unknown keys colour"),
    ({"llm": {"hidden_size": 8}}, "model_type"),
    ({"llm": {"from_teacher": True}, "ecg_encoder": 3}, "ecg_encoder"),
    ({"llm": {"from_teacher": True}, "gen_head": {"depth": 2}}, "gen_head"),
    ({"llm": {"pretrained": "/x", "hidden_size": 8}}, "pretrained"),
    ([1, 2], "JSON object"),
])
def test_bad_student_configs_name_the_problem(tmp_path: Path, data, needle: str) -> None:
    path = tmp_path / "student.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=needle) as info:
        StudentConfig.from_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_encoder_that_changes_the_patches_is_refused(teacher: UniEcgModel) -> None:
    with pytest.raises(ConfigError, match="patch_size"):
        build_student(teacher, StudentConfig(llm=SMALL_LLM, ecg_encoder={"width": 32, "patch_size": 100}))


def test_a_grounded_teacher_is_distilled_on_grounded_prompts_too(teacher: UniEcgModel) -> None:
    from uniecg_edge.training.distill_job import load_examples
    from uniecg_edge.training.presets import Stage1Config

    plain = load_examples(6, seed=0)
    mixed = load_examples(6, seed=0, grounding=Stage1Config(ground_fraction=0.5))
    assert all(ex.question is None for ex in plain)
    grounded = [ex for ex in mixed if ex.question is not None]
    assert 0 < len(grounded) < 6 and all(ex.question.startswith("Measured: ventricular rate ") for ex in grounded)
    for ex in grounded:  # the report repeats the measured rate it was given
        assert f"rate of {ex.question.split('rate ')[1].split(' bpm')[0]} bpm" in ex.report
    batch = collate(teacher, mixed)
    tok = teacher.tokenizer
    for row, ex in enumerate(mixed):
        ids = batch.interpret_ids[row][batch.interpret_mask[row] == 1].tolist()
        text = tok.decode(ids)
        assert ("Measured:" in text) == (ex.question is not None)
        labelled = batch.interpret_labels[row][batch.interpret_labels[row] != -100].tolist()
        assert tok.decode(labelled[:-1]).strip() == ex.report.strip()


def test_distillation_examples_show_counterpart_rhythms_as_the_teachers_grounding_phase_did() -> None:
    from uniecg_edge.training.dataset import ExampleSampler
    from uniecg_edge.training.distill_job import load_examples
    from uniecg_edge.training.presets import Stage1Config
    from uniecg_edge.training.scenarios import RHYTHM_COUNTERPARTS

    count = 12
    plain = ExampleSampler(0).examples("train", 0, count)
    swapped = load_examples(count, seed=0, grounding=Stage1Config(ground_fraction=1.0, ground_swap_fraction=1.0))
    has_counterpart = [ex.truth["rhythm"] in RHYTHM_COUNTERPARTS for ex in plain]
    assert any(has_counterpart) and not all(has_counterpart)
    for ex, distil, swap in zip(plain, swapped, has_counterpart, strict=True):
        assert distil.question is not None and distil.question.startswith("Measured: ")
        # the report is the example's own; the ECG shown is its counterpart where the rhythm has one
        assert ("atrial fibrillation" in distil.report.lower()) == (ex.truth["rhythm"] == "afib")
        assert np.array_equal(distil.ecg, ex.ecg) != swap


def test_the_teachers_recipe_settings_choose_the_distillation_examples(tmp_path: Path) -> None:
    from uniecg_edge.training.distill_job import teacher_recipe
    from uniecg_edge.training.presets import recipe_config

    assert teacher_recipe(tmp_path) is None  # a teacher trained elsewhere: the defaults
    cfg = recipe_config("student", seed=0)
    (tmp_path / "training_config.json").write_text(json.dumps(cfg.to_dict()))
    assert teacher_recipe(tmp_path) == cfg and cfg.stage1.ground_swap_fraction > 0
    (tmp_path / "training_config.json").write_text(json.dumps({**cfg.to_dict(), "bogus": 1}))
    with pytest.raises(ConfigError, match="training_config.json"):
        teacher_recipe(tmp_path)
