"""The numpy samplers against the diffusers schedulers they port, step for step on real UNet outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.schedulers import SchedulerConfig, make_scheduler
from uniecg_edge.runtime.schedulers import SAMPLERS, SamplerConfig, load_sampler_config, make_sampler

# diffusers' DPM-Solver calls np.array(tensor, copy=False) internally (numpy 2 deprecation), not our code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_config_has_the_fields_and_defaults_of_the_torch_config() -> None:
    ours = [(f.name, f.default) for f in dataclasses.fields(SamplerConfig)]
    theirs = [(f.name, f.default) for f in dataclasses.fields(SchedulerConfig)]
    assert ours == theirs
    assert set(SAMPLERS) == {"ddpm", "ddim", "ddim-trailing", "dpmsolver++"}


@pytest.mark.parametrize(("kind", "steps", "prediction"), [
    ("ddim", 8, "epsilon"), ("ddim", 50, "epsilon"), ("dpmsolver++", 8, "epsilon"), ("dpmsolver++", 4, "epsilon"),
    ("dpmsolver++", 20, "v_prediction"), ("ddpm", 8, "epsilon"), ("ddpm", 4, "sample"),
    ("ddim-trailing", 8, "epsilon"),
])
def test_each_step_matches_diffusers_on_the_same_unet_outputs(unet_and_terms, kind: str, steps: int,
                                                              prediction: str) -> None:
    unet, terms = unet_and_terms
    reference = make_scheduler(SchedulerConfig(kind=kind, num_inference_steps=steps, prediction_type=prediction))
    ours = make_sampler(SamplerConfig(kind=kind, num_inference_steps=steps, prediction_type=prediction))
    np.testing.assert_array_equal(ours.timesteps, reference.timesteps.numpy())
    assert ours.init_noise_sigma == reference.init_noise_sigma
    torch_noise = torch.Generator().manual_seed(3)  # DDPM's variance noise: diffusers draws it from this
    our_noise = torch.Generator().manual_seed(3)  # the same draws, handed to the numpy sampler
    shape = (1, unet.config.n_channels, unet.config.latent_length)
    sample = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    worst = 0.0
    for t in reference.timesteps:
        with torch.no_grad():
            output = unet(sample, torch.full((1,), int(t)), terms)
        expected = reference.step(output, t, sample, generator=torch_noise).prev_sample
        noise = torch.randn(sample.shape, generator=our_noise).numpy() if kind == "ddpm" and int(t) > 0 else None
        got = ours.step(output.numpy(), int(t), sample.numpy(), noise=noise)
        assert got.dtype == np.float32 and got.shape == tuple(sample.shape)
        scale = max(1.0, float(expected.abs().max()))  # float32 rounding grows with the values (DPM: up to ~90)
        worst = max(worst, float(np.abs(got - expected.numpy()).max()) / scale)
        sample = expected
    assert worst < 1e-5, f"{kind}: max |numpy - diffusers| / max(1, |x|) {worst:.2e} over {steps} steps"
    assert float(sample.abs().max()) > 0.01  # the chain did something


def test_ddpm_draws_its_noise_from_the_seeded_generator() -> None:
    cfg = SamplerConfig(kind="ddpm", num_inference_steps=4)
    x = np.ones((1, 4, 8), np.float32)
    runs = []
    for seed in (0, 0, 1):
        sampler, rng = make_sampler(cfg), np.random.default_rng(seed)
        runs.append(sampler.step(np.zeros_like(x), int(sampler.timesteps[0]), x, rng=rng))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])
    with pytest.raises(ValueError, match="rng= or noise="):
        make_sampler(cfg).step(x, int(make_sampler(cfg).timesteps[0]), x)


def test_dpmsolver_refuses_steps_out_of_order() -> None:
    sampler = make_sampler(SamplerConfig(kind="dpmsolver++", num_inference_steps=4))
    x = np.zeros((1, 4, 8), np.float32)
    with pytest.raises(ValueError, match="expects timestep"):
        sampler.step(x, int(sampler.timesteps[1]), x)


def test_bundle_scheduler_json_loads_and_bad_values_are_one_line_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"kind": "ddim", "num_inference_steps": 50, "clip_sample": True}))
    assert load_sampler_config(tmp_path) == SamplerConfig(kind="ddim", num_inference_steps=50)
    path.write_text(json.dumps({"kind": "ddim", "eta": 0.5}))
    with pytest.raises(ConfigError, match="unknown keys eta"):
        load_sampler_config(path)
    path.write_text(json.dumps({"kind": "euler"}))
    with pytest.raises(ConfigError, match="unknown scheduler kind 'euler'"):
        load_sampler_config(path)
    with pytest.raises(ConfigError, match="num_inference_steps must be in 1..1000"):
        SamplerConfig(kind="ddim", num_inference_steps=0)
    with pytest.raises(ConfigError, match="cannot read"):
        load_sampler_config(tmp_path / "missing.json")
