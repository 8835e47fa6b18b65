"""Distillation into a pretrained student (``init_from``) with its own diffusion decoder (``"diffusion": "own"``),
the run-settings presets, and the refusals, on the tiny default model as teacher and a smaller tiny student."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.commands.distill import PRESET_NAMES, distill
from uniecg_edge.errors import ConfigError
from uniecg_edge.model.ecg_encoder import EcgEncoder, EcgEncoderConfig
from uniecg_edge.model.gen_head import GenerationHead, GenHeadConfig
from uniecg_edge.model.llm import build_llm
from uniecg_edge.model.projector import EcgProjector, ProjectorConfig
from uniecg_edge.model.schedulers import SchedulerConfig
from uniecg_edge.model.tokenizer import save_tokenizer, train_tokenizer
from uniecg_edge.model.unet import ConditionalUNet1d, UNetConfig
from uniecg_edge.model.uniecg import UniEcgConfig, UniEcgModel
from uniecg_edge.model.vae import VaeConfig, VaeDecoder
from uniecg_edge.training import distill_job
from uniecg_edge.training.components import Vocabulary, llm_config
from uniecg_edge.training.distill_job import (
    DISTILL_PRESETS,
    SETTINGS,
    job_config,
    resolve_settings,
    run_distillation,
)
from uniecg_edge.training.presets import SMOKE_SIZES
from uniecg_edge.training.step_distill import StepDistillConfig
from uniecg_edge.training.student import StudentConfig, build_student

CONFIGS = Path(__file__).resolve().parents[2] / "uniecg_edge" / "training" / "configs"
STUDENT_EDGE = CONFIGS / "student_edge.json"
# the edge config (preset "edge", 8 target steps from the JSON) shrunk to a few steps by command-line options
SMALL = {"steps": 4, "batch_size": 2, "examples": 4, "diffusion_start_steps": 32, "diffusion_iterations": 3,
         "diffusion_batch_size": 2, "diffusion_pairs": 2, "checkpoint_every": 2, "lr": 1e-3, "diffusion_lr": 1e-3}
SMALL_ARGS = [arg for key, value in SMALL.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher(tiny_model_dir: Path) -> UniEcgModel:
    return UniEcgModel.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def student_dir(teacher: UniEcgModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smaller UniECG with the teacher's tokenizer and its own (smaller) UNet and VAE decoder."""
    torch.manual_seed(11)
    cond_dim = teacher.gen_head.config.cond_dim
    model = UniEcgModel(
        UniEcgConfig(name="tiny-pretrained-student", num_ecg_tokens=4, max_new_tokens=16, trained=False),
        ecg_encoder=EcgEncoder(EcgEncoderConfig(width=32, layers=1, heads=2)),
        projector=EcgProjector(ProjectorConfig.mlp2x(32, SMOKE_SIZES.llm_hidden)),
        llm=build_llm(llm_config(SMOKE_SIZES, Vocabulary.of(teacher.tokenizer))), tokenizer=teacher.tokenizer,
        gen_head=GenerationHead(GenHeadConfig(num_tokens=4, hidden_dim=SMOKE_SIZES.llm_hidden, cond_dim=cond_dim,
                                              mlp_dim=32)),
        unet=ConditionalUNet1d(UNetConfig(num_levels=3, cond_dim=cond_dim, time_embed_dim=8, time_hidden_dim=16,
                                          bottleneck_hidden_dim=8)),
        vae_decoder=VaeDecoder(VaeConfig(block_out_channels=(8, 16, 16, 16), norm_groups=4)),
        scheduler=SchedulerConfig(kind="ddim", num_inference_steps=20, clip_sample=False))
    return model.save_pretrained(tmp_path_factory.mktemp("pretrained") / "model")


def state(model: UniEcgModel) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def component(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if k.startswith(prefix + ".")}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_student_is_the_folders_model_before_training(teacher: UniEcgModel, student_dir: Path) -> None:
    loaded = state(UniEcgModel.from_pretrained(student_dir))
    student, projection = build_student(teacher, StudentConfig(init_from=str(student_dir), diffusion="own"))
    assert projection is None and same(state(student), loaded)
    trainable = {name.split(".")[0] for name, p in student.named_parameters() if p.requires_grad}
    assert trainable == {"projector", "llm", "gen_head"}  # encoder frozen by default, UNet and VAE decoder too
    counts = student.parameter_counts()
    assert counts["unet"] != teacher.parameter_counts()["unet"]
    # "teacher" diffusion: the folder's LLM side with copies of the teacher's UNet and VAE decoder
    mixed, _ = build_student(teacher, StudentConfig(init_from=str(student_dir), ecg_encoder="trainable"))
    weights, teacher_weights = state(mixed), state(teacher)
    for part in ("unet", "vae_decoder"):
        assert same(component(weights, part), component(teacher_weights, part))
    for part in ("ecg_encoder", "projector", "llm", "gen_head"):
        assert same(component(weights, part), component(loaded, part))
    assert all(p.requires_grad for p in mixed.ecg_encoder.parameters())
    assert mixed.scheduler == teacher.scheduler


def test_relative_init_from_resolves_against_the_json_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "student.json"
    path.write_text(json.dumps({"init_from": "../runs/model", "diffusion": "own"}))
    cfg = StudentConfig.from_file(path)
    assert cfg.init_from == str((tmp_path / "runs" / "model").resolve()) and cfg.ecg_encoder == "frozen"
    monkeypatch.chdir(tmp_path / "configs")  # --student-init resolves against the working directory
    assert cfg.with_init_from("other").init_from == str((tmp_path / "configs" / "other").resolve())
    with pytest.raises(ConfigError, match="--student-init"):
        StudentConfig(llm={"from_teacher": True}).with_init_from("other")
    edge = StudentConfig.from_file(STUDENT_EDGE)
    assert edge.diffusion == "own" and edge.init_from == str(CONFIGS / "model")
    assert edge.distill == {"preset": "edge", "diffusion_steps": 8}


def test_edge_preset_and_the_order_of_settings() -> None:
    assert set(PRESET_NAMES) == set(DISTILL_PRESETS)
    assert set(SETTINGS) <= {param.name for param in distill.params}  # every setting is a command-line option
    edge = job_config("t", str(STUDENT_EDGE), "o")
    assert edge.preset == "edge" and 300 <= edge.kd.steps <= 600
    assert (edge.diffusion.start_steps, edge.diffusion.target_steps, edge.diffusion.stages) == (64, 8, [32, 16, 8])
    cfg = StudentConfig(init_from="x", distill={"preset": "edge", "steps": 7})
    assert resolve_settings(None, cfg, {})[1]["steps"] == 7  # the JSON's section over its preset
    assert resolve_settings(None, cfg, {"steps": 9, "lr": None})[1]["steps"] == 9  # the command line over both
    name, values = resolve_settings("full", cfg, {})
    assert name == "full" and values["steps"] == 7 and "diffusion_start_steps" not in values
    full = job_config("t", str(CONFIGS / "student_tiny.json"), "o")  # the command's long-standing defaults
    assert (full.kd, full.diffusion, full.num_examples) == (distill_job.KdConfig(), StepDistillConfig(), 256)
    assert full.accel.checkpoint_every == 200


def cli_run(teacher_dir: Path, student_dir: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["distill", "--teacher", str(teacher_dir), "--student-config", str(STUDENT_EDGE),
                                     "--student-init", str(student_dir), "--out", str(out), *SMALL_ARGS, *extra])


@pytest.fixture(scope="module")
def own_run(tiny_model_dir: Path, student_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("own") / "student"
    result = cli_run(tiny_model_dir, student_dir, out, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output.strip().splitlines()[-1])


def test_own_diffusion_keeps_the_students_unet_and_ships_an_8_step_sampler(
        own_run: tuple[Path, dict], student_dir: Path, teacher: UniEcgModel) -> None:
    out, metrics = own_run
    shipped = UniEcgModel.from_pretrained(out)
    initial = UniEcgModel.from_pretrained(student_dir)
    assert shipped.scheduler.kind == "ddim-trailing" and shipped.scheduler.num_inference_steps == 8
    assert shipped.unet.config == initial.unet.config
    assert shipped.parameter_counts() == initial.parameter_counts()  # every component keeps its architecture
    after, before = state(shipped), state(initial)
    assert not same(component(after, "unet"), component(before, "unet"))  # step-distilled
    assert not same(component(after, "llm"), component(before, "llm"))  # KD
    for part in ("ecg_encoder", "vae_decoder"):
        assert same(component(after, part), component(before, part))
    diffusion = metrics["diffusion"]
    assert diffusion["source"] == "own" and "own UNet" in diffusion["stage0_teacher"]
    assert diffusion["unet_evaluations"] == {"teacher": 1000, "student": 8, "reduction": 125.0}
    assert [s["student_steps"] for s in diffusion["stages"]] == [16, 8]
    params = metrics["parameters"]
    everything = ["ecg_encoder", "projector", "llm", "gen_head", "unet", "vae_decoder"]
    assert params["components"] == everything
    assert params["teacher_total"] == sum(p.numel() for p in teacher.parameters())
    assert params["student_total"] == sum(p.numel() for p in shipped.parameters())
    assert params["ratio_total"] == pytest.approx(params["teacher_total"] / params["student_total"])
    assert params["student_fp32_bytes"] == 4 * params["student_total"]
    config = json.loads((out / "distill_config.json").read_text())
    assert config["preset"] == "edge" and config["student"]["init_from"] == str(student_dir.resolve())
    assert config["diffusion"]["start_steps"] == 32 and config["diffusion"]["pairs_per_trajectory"] == 2
    assert config["kd"]["steps"] == 4 and config["diffusion"]["target_steps"] == 8  # the option, the JSON


@pytest.mark.parametrize(("target", "crash_at"), [("teacher_outputs", 3), ("stage_pairs", 3)])
def test_resume_after_a_crash_matches_the_uninterrupted_run(tiny_model_dir: Path, student_dir: Path,
                                                            tmp_path: Path, crash_on_call,
                                                            own_run: tuple[Path, dict], target: str,
                                                            crash_at: int) -> None:
    out = tmp_path / "resumed"

    def job(resume: bool) -> distill_job.DistillJobConfig:  # what the command line of own_run builds
        return job_config(str(tiny_model_dir), str(STUDENT_EDGE), str(out), settings=SMALL,
                          student_init=str(student_dir), resume=resume)

    restore = crash_on_call(distill_job, target, crash_at)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_distillation(job(resume=False))
    restore()
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["checkpoint"].endswith("00000002")
    metrics = run_distillation(job(resume=True))
    straight_dir, straight_metrics = own_run
    assert same(state(UniEcgModel.from_pretrained(out)), state(UniEcgModel.from_pretrained(straight_dir)))
    assert metrics == straight_metrics


def other_tokenizer(student_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "other-tokenizer"
    shutil.copytree(student_dir, folder)
    shutil.rmtree(folder / "tokenizer")
    save_tokenizer(train_tokenizer(["sinus rhythm at 60 bpm", "atrial fibrillation"] * 5, 300, 4),
                   folder / "tokenizer")
    return folder


def other_condition_width(student_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "other-width"
    shutil.copytree(student_dir, folder)
    head = json.loads((folder / "gen_head" / "config.json").read_text())
    (folder / "gen_head" / "config.json").write_text(json.dumps({**head, "cond_dim": 32}))
    return folder


@pytest.mark.parametrize(("case", "needle"), [
    ("tokenizer", "tokenizer differs from the teacher's"),
    ("cond_width", "not the same condition space"),
    ("missing_folder", "--student-init"),
    ("own_without_init_from", "needs 'init_from'"),
    ("llm_with_init_from", "comes from that folder"),
    ("teacher_encoder_with_init_from", "'frozen' or 'trainable'"),
    ("unknown_setting", "unknown 'distill' settings warp"),
    ("setting_type", "'temperature' must be a number"),
])
def test_refusals_are_one_line_and_exit_2(tiny_model_dir: Path, student_dir: Path, tmp_path: Path, case: str,
                                          needle: str) -> None:
    config, init = tmp_path / "student.json", student_dir
    data: dict = {"init_from": str(student_dir), "diffusion": "own"}
    if case == "tokenizer":
        init = other_tokenizer(student_dir, tmp_path)
    elif case == "cond_width":
        init = other_condition_width(student_dir, tmp_path)
    elif case == "missing_folder":
        init = tmp_path / "nowhere"
    elif case == "own_without_init_from":
        data = {"llm": {"from_teacher": True}, "diffusion": "own"}
    elif case == "llm_with_init_from":
        data["llm"] = {"from_teacher": True}
    elif case == "teacher_encoder_with_init_from":
        data["ecg_encoder"] = "teacher"
    elif case == "unknown_setting":
        data["distill"] = {"warp": 3}
    else:
        data["distill"] = {"temperature": "hot"}
    config.write_text(json.dumps({**data, "init_from": str(init)} if "init_from" in data else data))
    result = CliRunner().invoke(main, ["distill", "--teacher", str(tiny_model_dir), "--student-config", str(config),
                                       "--out", str(tmp_path / "out"), *SMALL_ARGS])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.output
    assert not (tmp_path / "out").exists()  # refused before anything is written
