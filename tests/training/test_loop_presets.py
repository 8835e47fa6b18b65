from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from uniecg_edge.errors import ConfigError
from uniecg_edge.training.components import SHIPPED_COMPONENTS, Vocabulary, build_components, parameter_budget
from uniecg_edge.training.loop import LoopConfig, lr_factor, run_stage
from uniecg_edge.training.presets import STUDENT_MAX_BYTES, RecipeConfig, recipe_config


class Interrupted(Exception):
    pass


def _train(work: Path, stop_at: int | None = None) -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    target = nn.Linear(4, 1)

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        if stop_at is not None and step == stop_at:
            raise Interrupted
        gen = torch.Generator().manual_seed(step)  # the data of a step depends on the step only
        x = torch.randn(16, 4, generator=gen)
        with torch.no_grad():
            y = target(x)
        return {"loss": ((model(x) - y) ** 2).mean()}

    cfg = LoopConfig(steps=30, log_every=5, checkpoint_every_s=0.0)
    summary = run_stage("toy", work, {"model": model}, [{"params": list(model.parameters()), "lr": 1e-2}],
                        step_fn, cfg)
    return model, summary


def test_a_stage_stopped_and_resumed_ends_exactly_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    straight, summary = _train(tmp_path / "straight")
    with pytest.raises(Interrupted):
        _train(tmp_path / "resumed", stop_at=17)
    assert not (tmp_path / "resumed" / "done.json").exists()
    resumed, _ = _train(tmp_path / "resumed")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    logged = [json.loads(line) for line in (tmp_path / "straight" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [5, 10, 15, 20, 25, 30]
    assert logged[-1]["loss"] < logged[0]["loss"] and summary["steps"] == 30
    # a finished stage only reloads its weights
    again, again_summary = _train(tmp_path / "straight", stop_at=0)
    assert again_summary == summary and torch.equal(again[0].weight, straight[0].weight)


def test_learning_rate_warms_up_then_decays() -> None:
    cfg = LoopConfig(steps=100, warmup_fraction=0.1, min_lr_fraction=0.1)
    factors = [lr_factor(s, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and max(factors) == pytest.approx(1.0)
    assert factors[9] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1, abs=0.01)


def test_student_fits_25_mb_and_the_teacher_has_four_times_its_parameters() -> None:
    student_cfg, teacher_cfg = recipe_config("student"), recipe_config("small")
    assert recipe_config("teacher").sizes == teacher_cfg.sizes
    student = parameter_budget(build_components(student_cfg.sizes, Vocabulary(student_cfg.sizes.vocab_size),
                                                0).shipped())
    teacher = parameter_budget(build_components(teacher_cfg.sizes, Vocabulary(teacher_cfg.sizes.vocab_size),
                                                0).shipped())
    assert set(student["parameters"]) == set(SHIPPED_COMPONENTS)
    assert student["fp32_bytes"] <= STUDENT_MAX_BYTES and student["fits_student_budget"]
    assert teacher["total_parameters"] >= 4 * student["total_parameters"]


def test_recipe_config_round_trips_through_json_and_rejects_unknown_keys() -> None:
    cfg = recipe_config("smoke", seed=3)
    again = RecipeConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ConfigError, match="unknown"):
        RecipeConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="recipe preset"):
        recipe_config("huge")
    with pytest.raises(ConfigError, match="seed"):
        recipe_config("smoke", seed=-1)


@pytest.mark.parametrize("changes, field", [({"ground_partial_fraction": 1.2}, "ground_partial_fraction"),
                                            ({"ground_morphology_fraction": -0.5}, "ground_morphology_fraction"),
                                            ({"ground_swap_fraction": 1.5}, "ground_swap_fraction"),
                                            ({"ground_boundary_rate_fraction": -1.0}, "ground_boundary_rate_fraction"),
                                            ({"ground_partial_s": (6.0, 3.0)}, "ground_partial_s"),
                                            ({"ground_partial_s": (0.0, 3.0)}, "ground_partial_s")])
def test_grounding_augmentation_settings_out_of_range_are_refused(changes: dict, field: str) -> None:
    from uniecg_edge.training.presets import Stage1Config

    with pytest.raises(ConfigError, match=field):
        Stage1Config(**changes)
