"""Stage 2, text -> ECG, in three resumable phases over the example pool (:mod:`.pool`):

a. ``stage2_vae``: a DiffuSETS-shaped VAE on the pool's ECGs in generator space (12 x 1024), loss
   sum-squared-error / B + w x KL / B with w warming up linearly. Afterwards the latent scale is set to
   1 / std of the encoder means (the Stable Diffusion convention), so the UNet sees unit-variance latents.
b. ``stage2_unet``: the conditional UNet on the pool's latents, DDPM epsilon loss with t ~ U{1..998} and
   DiffuSETS' schedule; the condition is the request's MiniLM embedding x ``text_scale`` (one request style
   drawn per example and step, plus a little noise) with sex, age and heart rate raw, as DiffuSETS feeds them.
c. ``stage2_align``: the LLM (optionally) and the generation head, so that the last-layer states at the K [ECG]
   tokens after the generate prompt map onto the scaled MiniLM embedding of the request (MSE + cosine) and the
   model emits [ECG_0] when asked for an ECG; interpret batches are replayed so it keeps writing reports.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..model.schedulers import SchedulerConfig, make_scheduler
from ..model.vae import EcgVae
from .batching import Batcher, generate_forward, interpret_forward
from .components import Components
from .dataset import ExampleSampler
from .loop import LoopConfig, run_stage
from .pool import Pool
from .presets import RecipeConfig
from .reports import write_report
from .stage1 import ground_offset, grounded_questions, grounding_ecgs, grounding_sampler

log = logging.getLogger(__name__)

TRAIN_TIMESTEPS = (1, 999)  # t ~ U{1..998}, as DiffuSETS trains


def _rng(cfg: RecipeConfig, stage: int, step: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, 200 + stage, step]))


def _torch_gen(cfg: RecipeConfig, stage: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(_rng(cfg, stage, step).integers(2**62)))


def _loop(cfg: RecipeConfig, steps: int, grad_clip: float) -> LoopConfig:
    return LoopConfig(steps=steps, grad_clip=grad_clip, log_every=cfg.log_every,
                      checkpoint_every_s=cfg.checkpoint_every_s)


# ---- a. VAE ----------------------------------------------------------------------------------------------------
def vae_losses(vae: EcgVae, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Summed squared error and KL per example (DiffuSETS' form), averaged over the batch."""
    mean, logvar = vae.encoder(x)
    latent = vae.encoder.sample_latent(mean, logvar, generator=generator)
    recon = ((vae.decoder(latent) - x) ** 2).sum(dim=(1, 2)).mean()
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2)).mean()
    return {"recon": recon, "kl": kl}


def train_vae(vae: EcgVae, pool: Pool, cfg: RecipeConfig, work_dir: Path) -> dict[str, Any]:
    v = cfg.vae
    signals = torch.from_numpy(pool.signals)
    warm = max(1, int(v.kl_warmup_fraction * v.steps))

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        idx = _rng(cfg, 1, step).integers(0, pool.size, v.batch_size)
        parts = vae_losses(vae, signals[idx], _torch_gen(cfg, 1, step))
        weight = v.kl_weight * min(1.0, step / warm)
        return {"loss": parts["recon"] + weight * parts["kl"], **parts}

    params = [{"params": list(vae.parameters()), "lr": v.lr}]
    return run_stage("stage2_vae", work_dir, {"vae": vae}, params, step_fn, _loop(cfg, v.steps, v.grad_clip))


@torch.no_grad()
def calibrate_latent_scale(vae: EcgVae, pool: Pool, batch: int = 256) -> float:
    """Set the VAE's ``scale_factor`` to 1 / std of the encoder means over the pool; returns it."""
    means = [vae.encoder(torch.from_numpy(pool.signals[i:i + batch]))[0] for i in range(0, pool.size, batch)]
    std = float(torch.cat(means).std())
    scale = 1.0 / max(std, 1e-6)
    config = dataclasses.replace(vae.config, scale_factor=scale)
    vae.config = vae.encoder.config = vae.decoder.config = config
    return scale


@torch.no_grad()
def encode_latents(vae: EcgVae, signals: np.ndarray, batch: int = 256) -> torch.Tensor:
    """Deterministic scaled latents (mean x scale), (n, 4, 128)."""
    parts = [vae.encoder.encode(torch.from_numpy(signals[i:i + batch]), sample=False)
             for i in range(0, signals.shape[0], batch)]
    return torch.cat(parts)


# ---- b. UNet ---------------------------------------------------------------------------------------------------
def unet_loss(parts: Components, latents: torch.Tensor, cond: torch.Tensor, scalars: tuple[torch.Tensor, ...],
              t: torch.Tensor, noise: torch.Tensor, scheduler: Any, phase: torch.Tensor | None = None) -> torch.Tensor:
    """Epsilon MSE at timesteps ``t`` for clean ``latents`` and conditions (B, 1, D), sex/age/hr (B, 1, 1);
    ``phase`` (B, 1024): the examples' beat phase for a UNet with a beat clock (None: the regular clock of hr)."""
    noisy = scheduler.add_noise(latents, noise, t)
    sex, age, hr = scalars  # named: mypy cannot count the tuple pool_scalars builds
    terms = parts.unet.condition_terms(cond, sex, age, hr, phase=phase)
    return F.mse_loss(parts.unet(noisy, t, terms), noise)


def pool_phase(parts: Components, pool: Pool) -> torch.Tensor | None:
    """The pool's beat phase (n, 1024) when the UNet has a beat clock, else None."""
    cfg = parts.unet.config
    return torch.from_numpy(pool.beat_phase(cfg.beat_clock_window_s)) if cfg.beat_clock_harmonics else None


def pool_scalars(pool: Pool, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(a[idx]).reshape(-1, 1, 1) for a in (pool.sex, pool.age, pool.hr))  # type: ignore


def train_unet(parts: Components, latents: torch.Tensor, pool: Pool, cfg: RecipeConfig,
               work_dir: Path) -> dict[str, Any]:
    u = cfg.unet
    scheduler = make_scheduler(SchedulerConfig(kind="ddpm"))
    embeddings = torch.from_numpy(pool.embeddings)
    phase = pool_phase(parts, pool)

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        rng = _rng(cfg, 2, step)
        gen = _torch_gen(cfg, 2, step)
        idx = rng.integers(0, pool.size, u.batch_size)
        style = rng.integers(0, embeddings.shape[1], u.batch_size)
        cond = embeddings[idx, style].unsqueeze(1) * cfg.text_scale
        cond = cond + u.cond_noise_std * torch.randn(cond.shape, generator=gen)
        t = torch.randint(*TRAIN_TIMESTEPS, (u.batch_size,), generator=gen)
        noise = torch.randn(latents[idx].shape, generator=gen)
        beats = None if phase is None else phase[idx]
        return {"loss": unet_loss(parts, latents[idx], cond, pool_scalars(pool, idx), t, noise, scheduler, beats)}

    params = [{"params": [p for p in parts.unet.parameters() if p.requires_grad], "lr": u.lr}]
    return run_stage("stage2_unet", work_dir, {"unet": parts.unet}, params, step_fn, _loop(cfg, u.steps, u.grad_clip))


# ---- c. [ECG]-token alignment ----------------------------------------------------------------------------------
def alignment_losses(cond: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Squared error per dimension and 1 - cosine, each averaged over the batch; (B, 1, D) inputs."""
    mse = F.mse_loss(cond, target)
    cos = F.cosine_similarity(cond.flatten(1), target.flatten(1), dim=-1).mean()
    return {"mse": mse, "cos_distance": 1.0 - cos}


def train_alignment(parts: Components, batcher: Batcher, pool: Pool, sampler: ExampleSampler, cfg: RecipeConfig,
                    work_dir: Path) -> dict[str, Any]:
    a = cfg.align
    replay_offset = ground_offset(cfg) + cfg.stage1.ground_steps * cfg.stage1.batch_size
    grounded_model = cfg.stage1.ground_steps > 0
    if grounded_model:  # replay what the grounding phase trained on, or the replay undoes it
        sampler = grounding_sampler(sampler, cfg.stage1)
    embeddings = torch.from_numpy(pool.embeddings)

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        rng = _rng(cfg, 3, step)
        idx = rng.integers(0, pool.size, a.batch_size)
        # one request style per step: rows of similar length, little padding (reports are ~5x longer)
        style = np.full(a.batch_size, int(rng.integers(0, embeddings.shape[1])))
        batch = batcher.generate([pool.requests[i][s] for i, s in zip(idx, style, strict=True)])
        out, states = generate_forward(parts.llm, batch)
        cond = parts.gen_head(states)
        target = embeddings[idx, style].unsqueeze(1) * cfg.text_scale
        losses = alignment_losses(cond, target)
        loss = a.lm_weight * out.loss + a.mse_weight * losses["mse"] + a.cos_weight * losses["cos_distance"]
        result = {"lm": out.loss, **losses}
        if a.train_llm and a.replay_every > 0 and step % a.replay_every == 0:
            first = replay_offset + (step // a.replay_every) * a.replay_batch
            examples = sampler.examples("train", first, a.replay_batch)
            fraction = cfg.stage1.ground_fraction if grounded_model else 0.0
            grounded = grounded_questions(batcher.prompt.interpret_question, examples, fraction, rng)
            reports = [ex.report if q is None else write_report(truth, rng) for ex, (q, truth) in zip(
                examples, grounded, strict=True)]
            ecgs = grounding_ecgs(sampler, examples, grounded, first, cfg.stage1, rng, _rng(cfg, 4, step))
            replay = batcher.interpret(ecgs, reports, [q for q, _ in grounded])
            replay_out, _ = interpret_forward(parts.ecg_encoder, parts.projector, parts.llm, replay,
                                              batcher.ecg_token_id)
            loss = loss + replay_out.loss
            result["replay_lm"] = replay_out.loss
        return {"loss": loss, **result}

    modules: dict[str, Any] = {"gen_head": parts.gen_head}
    params = [{"params": list(parts.gen_head.parameters()), "lr": a.lr_head}]
    if a.train_llm:
        modules["llm"] = parts.llm
        params.append({"params": list(parts.llm.parameters()), "lr": a.lr_llm})
    else:
        parts.llm.requires_grad_(False)
    # the encoder and projector only serve the replay batches: frozen here
    parts.ecg_encoder.requires_grad_(False)
    parts.projector.requires_grad_(False)
    try:
        return run_stage("stage2_align", work_dir, modules, params, step_fn, _loop(cfg, a.steps, a.grad_clip))
    finally:
        for module in (parts.ecg_encoder, parts.projector, parts.llm):
            module.requires_grad_(True)
            module.eval()


def train_generator(parts: Components, pool: Pool, cfg: RecipeConfig, work_dir: Path) -> dict[str, Any]:
    """The VAE, its latent scale, then the UNet on the scaled latents (needs only the pool: :mod:`.parallel` runs it
    beside stage 1); returns their summaries and the latent scale."""
    vae = train_vae(parts.vae, pool, cfg, work_dir / "stage2_vae")
    scale = calibrate_latent_scale(parts.vae, pool)
    (work_dir / "stage2_vae" / "latent_scale.json").write_text(json.dumps({"scale_factor": scale}) + "\n")
    unet = train_unet(parts, encode_latents(parts.vae, pool.signals), pool, cfg, work_dir / "stage2_unet")
    return {"vae": vae, "latent_scale": scale, "unet": unet}


def train_stage2(parts: Components, batcher: Batcher, pool: Pool, sampler: ExampleSampler, cfg: RecipeConfig,
                 work_dir: Path) -> dict[str, Any]:
    """All three phases; returns their summaries and the latent scale."""
    generator = train_generator(parts, pool, cfg, work_dir)
    align = train_alignment(parts, batcher, pool, sampler, cfg, work_dir / "stage2_align")
    return {**generator, "align": align}
