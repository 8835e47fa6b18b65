"""``uniecg-edge distill`` end to end on the tiny default model, resume after a crash, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.model.pipeline import TorchPipeline
from uniecg_edge.model.uniecg import UniEcgModel
from uniecg_edge.training import distill_job
from uniecg_edge.training.accel import AccelConfig
from uniecg_edge.training.distill import KdConfig
from uniecg_edge.training.distill_job import DistillJobConfig, run_distillation
from uniecg_edge.training.step_distill import StepDistillConfig

STUDENT_TINY = Path(__file__).resolve().parents[2] / "uniecg_edge" / "training" / "configs" / "student_tiny.json"
SMALL_RUN = ["--steps", "4", "--batch-size", "2", "--examples", "4", "--diffusion-start-steps", "16",
             "--diffusion-iterations", "3", "--diffusion-batch-size", "2", "--checkpoint-every", "2"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def job(teacher: Path, out: Path, resume: bool = False) -> DistillJobConfig:
    return DistillJobConfig(
        teacher=str(teacher), student_config=str(STUDENT_TINY), out=str(out),
        kd=KdConfig(steps=4, batch_size=2, lr=1e-3), resume=resume, num_examples=4, seed=7,
        diffusion=StepDistillConfig(start_steps=32, target_steps=8, iterations_per_stage=4, batch_size=2, lr=1e-3,
                                    seed=7, eval_samples=2),
        accel=AccelConfig(checkpoint_every=2, cpu=True),
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    model = UniEcgModel.from_pretrained(folder)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distill") / "straight"
    run_distillation(job(tiny_model_dir, out))
    return out


def test_cli_writes_a_loadable_student_with_few_step_sampler(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    result = CliRunner().invoke(main, ["distill", "--teacher", str(tiny_model_dir), "--student-config",
                                       str(STUDENT_TINY), "--out", str(out), *SMALL_RUN, "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    student = UniEcgModel.from_pretrained(out)
    teacher = UniEcgModel.from_pretrained(tiny_model_dir)
    assert student.scheduler.kind == "ddim-trailing" and student.scheduler.num_inference_steps == 8
    assert student.llm.config.hidden_size == 32 and student.llm.config.num_hidden_layers == 1
    params = metrics["parameters"]
    assert params["student"]["llm"] == sum(p.numel() for p in student.llm.parameters())
    assert params["teacher_total"] == sum(p.numel() for p in teacher.parameters())
    assert params["ratio_llm"] == pytest.approx(params["teacher"]["llm"] / params["student"]["llm"])
    evaluations = metrics["diffusion"]["unet_evaluations"]
    assert evaluations == {"teacher": 1000, "student": 8, "reduction": 125.0}
    assert [s["student_steps"] for s in metrics["diffusion"]["stages"]] == [8]
    assert set(metrics["llm"]["losses"]) >= {"total", "kd", "ce", "kl", "gen"}
    assert json.loads((out / "metrics.json").read_text()) == metrics
    config = json.loads((out / "distill_config.json").read_text())
    assert config["kd"]["steps"] == 4 and config["diffusion"]["target_steps"] == 8
    assert config["student"]["name"] == "uniecg-edge-student-tiny"
    generated = TorchPipeline(student, model_dir=out).generate("sinus rhythm", hr=70, age=50, sex="F", seed=1)
    assert generated.steps == 8 and generated.provenance["scheduler"] == "ddim-trailing"
    assert generated.record.signal.shape == (12, 5000)


def test_student_differs_from_teacher_where_it_was_trained(uninterrupted: Path, tiny_model_dir: Path) -> None:
    student, teacher = weights(uninterrupted), weights(tiny_model_dir)
    assert any(not torch.equal(student[k], teacher[k]) for k in student if k.startswith("unet."))
    assert all(torch.equal(student[k], teacher[k]) for k in student if k.startswith(("vae_decoder.", "ecg_encoder.")))


@pytest.mark.parametrize(("target", "crash_at"), [("teacher_outputs", 3), ("stage_pairs", 7)])
def test_resume_after_a_crash_matches_the_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path, crash_on_call,
                                                            uninterrupted: Path, target: str, crash_at: int) -> None:
    out = tmp_path / "resumed"
    restore = crash_on_call(distill_job, target, crash_at)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_distillation(job(tiny_model_dir, out))
    restore()
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())["checkpoint"]
    assert latest.endswith("00000002")  # the step-2 checkpoint, written before the crash
    metrics = run_distillation(job(tiny_model_dir, out, resume=True))
    resumed, straight = weights(out), weights(uninterrupted)
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    assert metrics == json.loads((uninterrupted / "metrics.json").read_text())


def test_existing_run_needs_resume_with_the_same_settings(tiny_model_dir: Path, uninterrupted: Path) -> None:
    args = ["distill", "--teacher", str(tiny_model_dir), "--student-config", str(STUDENT_TINY),
            "--out", str(uninterrupted), *SMALL_RUN]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--resume" in result.output
    result = CliRunner().invoke(main, [*args, "--resume"])  # SMALL_RUN is not the fixture's job
    assert result.exit_code == 2 and "differ" in result.output and "kd" in result.output


@pytest.mark.parametrize("case", ["missing_teacher", "not_a_checkpoint", "missing_config", "bad_json",
                                  "unknown_key", "steps_not_dividing", "not_power_of_two"])
def test_bad_inputs_give_one_line_and_exit_2(tiny_model_dir: Path, tmp_path: Path, case: str) -> None:
    teacher, config, extra = tiny_model_dir, STUDENT_TINY, []
    if case == "missing_teacher":
        teacher = tmp_path / "nowhere"
    elif case == "not_a_checkpoint":
        teacher = tmp_path
    elif case == "missing_config":
        config = tmp_path / "absent.json"
    elif case == "bad_json":
        config = tmp_path / "bad.json"
        config.write_text("{\"llm\": ")
    elif case == "unknown_key":
        config = tmp_path / "unknown.json"
        config.write_text(json.dumps({"llm": {"from_teacher": True}, "layers": 3}))
    elif case == "steps_not_dividing":
        extra = ["--diffusion-steps", "3", "--diffusion-start-steps", "12"]
    else:
        extra = ["--diffusion-steps", "8", "--diffusion-start-steps", "24"]
    result = CliRunner().invoke(main, ["distill", "--teacher", str(teacher), "--student-config", str(config),
                                       "--out", str(tmp_path / "out"), *SMALL_RUN, *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "checkpoints").exists()
