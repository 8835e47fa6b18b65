"""Schedulers: DiffuSETS defaults, registry, JSON persistence, deterministic sampling and UNet call counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.schedulers import (
    SCHEDULERS,
    SchedulerConfig,
    load_scheduler_config,
    make_scheduler,
    sample_latents,
    save_scheduler_config,
    unet_evaluations,
)

# diffusers' DPM-Solver calls np.array(tensor, copy=False) internally (numpy 2 deprecation), not our code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_defaults_are_the_diffusets_sampler() -> None:
    cfg = SchedulerConfig()
    scheduler = make_scheduler(cfg)
    assert type(scheduler).__name__ == "DDPMScheduler"
    assert scheduler.config.variance_type == "fixed_small" and scheduler.config.clip_sample
    assert scheduler.config.clip_sample_range == 1.0 and scheduler.config.prediction_type == "epsilon"
    betas = scheduler.betas.numpy()
    assert np.allclose(betas, np.linspace(0.00085, 0.012, 1000), atol=1e-9)
    assert scheduler.timesteps[0] == 999 and scheduler.timesteps[-1] == 0


def test_registry_holds_the_sampler_kinds() -> None:
    assert list(SCHEDULERS) == ["ddim", "ddim-trailing", "ddpm", "dpmsolver++"]
    names = {
        kind: type(make_scheduler(SchedulerConfig(kind=kind, num_inference_steps=10))).__name__ for kind in SCHEDULERS
    }
    assert names == {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "ddim-trailing": "DDIMScheduler",
                     "dpmsolver++": "DPMSolverMultistepScheduler"}
    dpm = make_scheduler(SchedulerConfig(kind="dpmsolver++", num_inference_steps=10))
    assert dpm.config.algorithm_type == "dpmsolver++"


@pytest.mark.parametrize(("kind", "steps"), [("ddpm", 1000), ("ddim", 50), ("dpmsolver++", 20), ("ddim", 1000)])
def test_unet_evaluation_counts(kind: str, steps: int) -> None:
    assert unet_evaluations(SchedulerConfig(kind=kind, num_inference_steps=steps)) == steps


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "euler"}, {"num_inference_steps": 0}, {"num_inference_steps": 1001}, {"beta_start": 0.02}],
)
def test_invalid_configs_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SchedulerConfig(**kwargs)  # type: ignore[arg-type]


def test_json_round_trip_by_folder_and_by_file(tmp_path) -> None:
    cfg = SchedulerConfig(kind="dpmsolver++", num_inference_steps=25, clip_sample=False)
    written = save_scheduler_config(cfg, tmp_path / "bundle")
    assert written == tmp_path / "bundle" / "scheduler.json"
    assert json.loads(written.read_text())["kind"] == "dpmsolver++"
    assert load_scheduler_config(tmp_path / "bundle") == cfg
    as_file = save_scheduler_config(cfg, tmp_path / "diffusion" / "scheduler.json")
    assert as_file.is_file() and load_scheduler_config(as_file) == cfg


def test_bad_scheduler_files_raise_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_scheduler_config(tmp_path / "nothing.json")
    bad = tmp_path / "scheduler.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_scheduler_config(bad)
    bad.write_text(json.dumps({"kind": "ddpm", "guidance": 3}))
    with pytest.raises(ConfigError, match="guidance"):
        load_scheduler_config(bad)
    bad.write_text(json.dumps({"kind": "karras"}))
    with pytest.raises(ConfigError, match="karras"):
        load_scheduler_config(bad)


class CallCounter:
    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *_: object) -> None:
        self.calls += 1


@pytest.mark.parametrize(("kind", "steps"), [("ddpm", 25), ("ddim", 10), ("dpmsolver++", 8)])
def test_sampling_is_deterministic_per_seed(unet_and_terms, kind: str, steps: int) -> None:
    unet, terms = unet_and_terms
    cfg = SchedulerConfig(kind=kind, num_inference_steps=steps)
    counter = CallCounter(unet)
    try:
        a = sample_latents(unet, terms, cfg, batch=2, seed=11)
    finally:
        counter.handle.remove()
    assert counter.calls == unet_evaluations(cfg) == steps
    b = sample_latents(unet, terms, cfg, batch=2, seed=11)
    c = sample_latents(unet, terms, cfg, batch=2, seed=12)
    assert a.shape == (2, 4, 128) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # each sample of a batch starts from its own noise


def test_ddpm_draws_fresh_noise_each_step(unet_and_terms) -> None:
    """Same start noise but different per-step noise must differ for DDPM and not for deterministic DDIM."""
    unet, terms = unet_and_terms
    for kind, stochastic in (("ddpm", True), ("ddim", False)):
        cfg = SchedulerConfig(kind=kind, num_inference_steps=5)
        scheduler = make_scheduler(cfg)
        gen = torch.Generator().manual_seed(0)
        start = torch.randn(1, 4, 128, generator=gen)
        outs = []
        for step_seed in (1, 2):
            x, step_gen = start.clone(), torch.Generator().manual_seed(step_seed)
            for timestep in scheduler.timesteps:
                with torch.no_grad():
                    eps = unet(x, torch.full((1,), int(timestep)), terms)
                x = scheduler.step(eps, timestep, x, generator=step_gen).prev_sample
            outs.append(x)
        assert torch.equal(outs[0], outs[1]) is not stochastic


def test_terms_batch_must_be_one_or_the_sample_batch(unet_and_terms) -> None:
    unet, terms = unet_and_terms
    cfg = SchedulerConfig(kind="ddim", num_inference_steps=2)
    doubled = tuple(t.expand(2, -1, -1) for t in terms)
    assert torch.equal(
        sample_latents(unet, doubled, cfg, batch=2, seed=3), sample_latents(unet, terms, cfg, batch=2, seed=3)
    )
    with pytest.raises(ValueError, match="expected 1 or 3"):
        sample_latents(unet, doubled, cfg, batch=3)
