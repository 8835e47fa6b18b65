"""Progressive step distillation on a small UNet: grids, the shipped sampler, and the gain over plain DDIM."""

from __future__ import annotations

import pytest
import torch

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.schedulers import SchedulerConfig, make_scheduler, sample_latents, unet_evaluations
from uniecg_edge.model.unet import ConditionalUNet1d, UNetConfig
from uniecg_edge.training.step_distill import (
    ConditionPool,
    StageObjective,
    StepDistillConfig,
    alphas_with_clean,
    ddim_grid,
    freeze,
    new_student,
    sample_error,
    sample_on_grid,
    shipped_scheduler,
    stage_pairs,
)

SMALL_UNET = UNetConfig(num_levels=3, latent_length=32, cond_dim=8, time_embed_dim=8, time_hidden_dim=16,
                        num_heads=2, bottleneck_hidden_dim=8, bottleneck_heads=2, kernel_size=3)


@pytest.fixture(scope="module")
def unet() -> ConditionalUNet1d:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return freeze(ConditionalUNet1d(SMALL_UNET))


@pytest.fixture(scope="module")
def pool() -> ConditionPool:
    gen = torch.Generator().manual_seed(0)
    m = 32
    return ConditionPool(cond=torch.randn(m, 1, 8, generator=gen),
                         sex=torch.randint(0, 2, (m, 1, 1), generator=gen).float(),
                         age=20 + 60 * torch.rand(m, 1, 1, generator=gen),
                         hr=50 + 70 * torch.rand(m, 1, 1, generator=gen))


def test_grids_nest_and_span_noise_to_clean() -> None:
    for n in (8, 16, 1024):
        grid = ddim_grid(n)
        assert len(grid) == n + 1 and grid[0] == 999 and grid[-1] == -1
        assert ddim_grid(2 * n)[::2] == grid
        assert all(a >= b for a, b in zip(grid[:-1], grid[1:], strict=True))


@pytest.mark.parametrize("steps", [8, 4])
def test_shipped_scheduler_samples_the_distillation_grid(unet: ConditionalUNet1d, steps: int) -> None:
    cfg = shipped_scheduler(SchedulerConfig(), steps)
    assert cfg.kind == "ddim-trailing" and not cfg.clip_sample
    assert list(make_scheduler(cfg).timesteps) == ddim_grid(steps)[:-1]
    assert unet_evaluations(cfg) == steps
    terms = unet.condition_terms(torch.randn(1, 1, 8), torch.ones(1, 1, 1), torch.full((1, 1, 1), 60.0),
                                 torch.full((1, 1, 1), 75.0))
    runtime = sample_latents(unet, terms, cfg, batch=2, seed=5)
    noise = torch.randn((2, 4, 32), generator=torch.Generator().manual_seed(5))
    ours, _ = sample_on_grid(unet, terms, ddim_grid(steps), noise, alphas_with_clean(cfg))
    assert torch.allclose(runtime, ours, atol=1e-4, rtol=1e-4)


def test_trailing_kind_refuses_steps_that_do_not_divide_the_timesteps() -> None:
    with pytest.raises(ConfigError, match="dividing 1000"):
        make_scheduler(SchedulerConfig(kind="ddim-trailing", num_inference_steps=16))


def test_stage_pairs_are_two_teacher_steps(unet: ConditionalUNet1d, pool: ConditionPool) -> None:
    cfg = StepDistillConfig(start_steps=16, target_steps=8, batch_size=2, pairs_per_trajectory=3)
    alphas = alphas_with_clean(SchedulerConfig())
    pairs = stage_pairs(unet, pool, 8, cfg, alphas, stage=0, step=0, process=0, device="cpu")
    again = stage_pairs(unet, pool, 8, cfg, alphas, stage=0, step=0, process=0, device="cpu")
    assert all(torch.equal(pairs[k], again[k]) for k in pairs)  # a pure function of (seed, stage, step, process)
    assert pairs["z_t"].shape == (6, 4, 32)
    i = 0
    t, s = int(pairs["t"][i]), int(pairs["s"][i])
    mid = ddim_grid(16)[ddim_grid(16).index(t) + 1]
    terms = unet.condition_terms(pairs["cond"][i:i + 1], pairs["sex"][i:i + 1], pairs["age"][i:i + 1],
                                 pairs["hr"][i:i + 1])
    z_s, _ = sample_on_grid(unet, terms, [t, mid, s], pairs["z_t"][i:i + 1], alphas)
    assert torch.allclose(z_s, pairs["z_s"][i:i + 1], atol=1e-5)


def test_progressive_distillation_beats_plain_ddim_at_the_same_steps(unet: ConditionalUNet1d,
                                                                      pool: ConditionPool) -> None:
    # one halving stage, 16 -> 8 steps (the job tests run two); the reference is the teacher on its 16-step grid
    cfg = StepDistillConfig(start_steps=16, target_steps=8, iterations_per_stage=40, batch_size=8, lr=1e-3)
    alphas = alphas_with_clean(SchedulerConfig())
    teacher = unet
    for stage, steps in enumerate(cfg.stages):
        student = new_student(teacher)
        objective = StageObjective(student, alphas, cfg.weighting)
        optimizer = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=cfg.lr)
        for step in range(cfg.iterations_per_stage):
            loss = objective(**stage_pairs(teacher, pool, steps, cfg, alphas, stage=stage, step=step, process=0,
                                           device="cpu"))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        teacher = freeze(student)
    assert cfg.stages == [8]
    plain = sample_error(unet, unet, pool, 8, 16, alphas, seed=99)
    distilled = sample_error(teacher, unet, pool, 8, 16, alphas, seed=99)
    assert distilled < 0.5 * plain, (distilled, plain)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"start_steps": 24, "target_steps": 8}, "power of two"),
    ({"start_steps": 8, "target_steps": 8}, "start_steps > target_steps"),
    ({"weighting": "uniform"}, "weighting"),
])
def test_bad_step_distillation_configs(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        StepDistillConfig(**kwargs)


def test_student_trains_every_parameter_the_sampler_uses(unet: ConditionalUNet1d, pool: ConditionPool) -> None:
    student = new_student(unet)
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    unused = (".block.down.", "cross_attention.to_q", "embeddings")  # skipped by the fast path / frozen tables
    assert trainable and not any(k in n for n in trainable for k in unused)
    cfg = StepDistillConfig(start_steps=16, target_steps=8, batch_size=2)
    alphas = alphas_with_clean(SchedulerConfig())
    StageObjective(student, alphas, cfg.weighting)(**stage_pairs(unet, pool, 8, cfg, alphas, stage=0, step=0,
                                                                 process=0, device="cpu")).backward()
    assert all(p.grad is not None for n, p in student.named_parameters() if n in trainable)  # DDP-safe
    assert all(p.grad is None for p in unet.parameters())  # the teacher is never trained
