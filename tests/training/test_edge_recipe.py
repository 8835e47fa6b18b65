"""The edge recipe end to end on the smoke presets: two recipes at once, distillation, continuation, shipping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uniecg_edge.model.uniecg import UniEcgModel
from uniecg_edge.training import edge_recipe

SHORT_DISTILL = ["--preset=full", "--steps=2", "--batch-size=2", "--examples=4", "--diffusion-start-steps=16",
                 "--diffusion-iterations=2", "--diffusion-batch-size=2", "--checkpoint-every=1", "--cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("edge")
    argv = ["--seed", "0", "--out", str(out), "--teacher-preset", "smoke", "--student-preset", "smoke",
            *[f"--distill-arg={arg}" for arg in SHORT_DISTILL]]
    assert edge_recipe.main(argv) == 0
    return out


def test_recipes_then_distillation_give_a_few_step_student(run: Path) -> None:
    teacher = UniEcgModel.from_pretrained(run / "teacher" / "model")
    student = UniEcgModel.from_pretrained(run / "edge")
    assert student.tokenizer.get_vocab() == teacher.tokenizer.get_vocab()
    assert student.scheduler.num_inference_steps == 8  # student_edge.json's target
    summary = json.loads((run / edge_recipe.SUMMARY_FILE).read_text())
    assert set(summary["steps"]) == {"recipes", "distill"}
    assert summary["total_s"] >= summary["steps"]["distill"]["seconds"] > 0
    assert any("--preset smoke" in c and "--threads 1" in c for c in summary["steps"]["recipes"]["commands"])


def test_running_again_skips_finished_steps(run: Path) -> None:
    before = (run / "edge" / "config.json").stat().st_mtime_ns
    summary = edge_recipe.run_edge_recipe(edge_recipe.EdgeRecipeConfig(out=str(run), teacher_preset="smoke",
                                                                       student_preset="smoke"))
    assert (run / "edge" / "config.json").stat().st_mtime_ns == before
    assert set(summary["steps"]) == {"recipes", "distill"}


def test_failing_step_names_its_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = edge_recipe.main(["--out", str(tmp_path), "--teacher-preset", "no-such-preset", "--student-preset",
                             "smoke", "--jobs", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "teacher.log" in err and "\n" not in err
