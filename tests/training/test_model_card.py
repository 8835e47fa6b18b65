"""The model card reads its figures from the run's JSON: the training time of a resumed run, the grounding line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from uniecg_edge.model.uniecg import UniEcgModel
from uniecg_edge.training.model_card import render_model_card


def test_training_time_sums_every_phase_even_when_the_run_was_resumed(tiny_model_dir: Path) -> None:
    model = UniEcgModel.from_pretrained(tiny_model_dir)
    metrics = {"torch_threads": 1, "total_s": 60.0,  # the last resume alone took a minute
               "stages": {"stage1": {"encoder": {"seconds": 600.0}, "language": {"seconds": 3000.0}},
                          "stage2": {"vae": {"seconds": 300.0}, "latent_scale": 2.0, "unet": {"seconds": 900.0}}}}
    card = render_model_card(model, {"training_config.json": {"preset": "student", "seed": 0},
                                     "metrics.json": metrics}, weight_bytes=1000)
    assert "| training time | 80 min of training steps" in card
    assert "Grounded: no" in card
    model.config = dataclasses.replace(model.config, grounded=True)
    assert "Grounded: yes" in render_model_card(model, {}, weight_bytes=1000)
