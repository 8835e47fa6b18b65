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
    assert "min from start to end" not in card  # the total of the last resume is not the run's length
    metrics["resumed"] = True  # its phases may have run on other thread counts than the last part
    card = render_model_card(model, {"training_config.json": {"preset": "student", "seed": 0},
                                     "metrics.json": metrics}, weight_bytes=1000)
    assert "machine, resumed in parts (the last on 1 torch thread(s))" in card


def test_the_card_names_only_the_grounding_augmentations_used_and_the_wall_time_of_a_parallel_run(
        tiny_model_dir: Path) -> None:
    model = UniEcgModel.from_pretrained(tiny_model_dir)
    metrics = {"torch_threads": 1, "jobs": 2, "resumed": False, "total_s": 4908.0,
               "stages": {"stage1": {"encoder": {"seconds": 230.0}, "language": {"seconds": 2453.0}},
                          "stage2": {"unet": {"seconds": 2320.0}, "align": {"seconds": 821.0}}}}
    config = {"preset": "student", "seed": 0, "stage1": {"ground_tremor_fraction": 0.3,
                                                         "ground_morphology_fraction": 0.0}}
    card = render_model_card(model, {"training_config.json": config, "metrics.json": metrics}, weight_bytes=1000)
    data = card.split("## Data")[1].split("##")[0]
    assert "in the grounding phase, a limb tremor that looks like fibrillatory waves)" in data
    assert "reshaped P and T waves" not in data and "show part of the ECG" not in data
    assert "second process beside stage 1 (`--jobs 2`); the run took 82 min from start to end" in card
    config["stage1"] = {"ground_partial_fraction": 0.5}
    card = render_model_card(model, {"training_config.json": config, "metrics.json": metrics}, weight_bytes=1000)
    data = card.split("## Data")[1].split("##")[0]
    assert "in the grounding phase, prompts that show part of the ECG" in data and "limb tremor" not in data
    limitations = card.split("## Limitations")[1].split("##")[0]
    assert "counterpart rhythm" not in limitations
    config["stage1"] = {"ground_swap_fraction": 0.5, "ground_boundary_rate_fraction": 0.5}
    for grounded, named in ((False, False), (True, True)):
        model.config = dataclasses.replace(model.config, grounded=grounded)
        card = render_model_card(model, {"training_config.json": config, "metrics.json": metrics}, weight_bytes=1000)
        limitations = card.split("## Limitations")[1].split("##")[0]
        assert ("calls sinus rhythm or atrial fibrillation from the DSP's measured RR" in limitations) is named
        assert "the counterpart rhythm (sinus <-> atrial fibrillation)" in card.split("## Data")[1]
        assert "sinus rates near the 60 and 100 bpm limits" in card.split("## Data")[1]


def test_the_card_states_the_beat_clock_limitation_only_for_a_unet_with_a_clock(tiny_model_dir: Path) -> None:
    from uniecg_edge.model.unet import ConditionalUNet1d

    model = UniEcgModel.from_pretrained(tiny_model_dir)
    assert model.unet.config.beat_clock_harmonics > 0  # the untrained model has one, like the recipe's
    limitations = render_model_card(model, {}, weight_bytes=1000).split("## Limitations")[1].split("##")[0]
    assert "regular clock at the requested heart rate" in limitations
    model.unet = ConditionalUNet1d(dataclasses.replace(model.unet.config, beat_clock_harmonics=0))
    limitations = render_model_card(model, {}, weight_bytes=1000).split("## Limitations")[1].split("##")[0]
    assert "clock" not in limitations and "derived from I and II" in limitations
