"""Text -> ECG on the device: [ECG]-token states -> ``gen_head`` -> ``unet_cond`` once -> N scheduler steps over
``unet`` -> ``vae_decoder`` -> 12 x 1024 at 102.4 Hz -> 500 Hz record.

The scheduler is the numpy port (:mod:`.schedulers`) on the host; the graphs run on the backend. The UNet feeds
(latent, timestep buffer, the condition terms) are set up once and updated in place per step.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..leads import STANDARD_LEADS, derive_limb_leads
from ..preprocess import from_generator_space
from ..record import EcgRecord
from .graph import Graph
from .schedulers import SamplerConfig, initial_latent, make_sampler

SEX_CODES = {"M": 1.0, "F": 0.0}  # as the torch pipeline encodes sex for the UNet


@dataclass
class Diffusion:
    latent: np.ndarray  # (1, C, L)
    ecg_102: np.ndarray  # (12, 1024) mV at 102.4 Hz
    timings: dict[str, float] = field(default_factory=dict)


def patient_inputs(hr: float, age: float, sex: str) -> dict[str, np.ndarray]:
    """The ``unet_cond`` patient inputs (1, 1, 1): sex (1 male, 0 female), age in years, heart rate in bpm."""
    if sex not in SEX_CODES:
        raise ConfigError(f"sex must be M or F, got {sex!r}")
    def scalar(value: float) -> np.ndarray:
        return np.full((1, 1, 1), float(value), np.float32)

    return {"sex": scalar(SEX_CODES[sex]), "age": scalar(age), "hr": scalar(hr)}


def run_diffusion(graphs: Mapping[str, Graph], ecg_token_states: np.ndarray, patient: Mapping[str, np.ndarray],
                  sampler_config: SamplerConfig, seed: int) -> Diffusion:
    """The generation graphs from the (K, H) [ECG]-token states to a (12, 1024) ECG at 102.4 Hz."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cond = graphs["gen_head"].run({"ecg_token_states": ecg_token_states[None].astype(np.float32)})["cond"]
    timings["gen_head_s"] = time.perf_counter() - start

    start = time.perf_counter()
    terms = graphs["unet_cond"].run({"cond": cond, **patient})
    timings["unet_cond_s"] = time.perf_counter() - start

    unet = graphs["unet"]
    latent_info = next(i for i in unet.inputs if i.name == "latent")
    channels, length = int(latent_info.shape[1]), int(latent_info.shape[2])  # type: ignore[arg-type]
    sampler = make_sampler(sampler_config)
    rng = np.random.default_rng(seed)
    latent = initial_latent((1, channels, length), rng, sampler)
    timestep = np.zeros((1,), np.int64)
    feeds: dict[str, np.ndarray] = {"latent": latent, "timestep": timestep,
                                    **{i.name: terms[i.name] for i in unet.inputs if i.name.startswith("cond_term.")}}
    steps: list[float] = []
    start = time.perf_counter()
    for t in sampler.timesteps:
        step_start = time.perf_counter()
        timestep[0] = int(t)
        feeds["latent"] = sampler.scale_model_input(latent, int(t))
        (noise,) = unet.run(feeds).values()
        latent = sampler.step(noise, int(t), latent, rng=rng)
        steps.append(time.perf_counter() - step_start)
    timings["diffusion_s"] = time.perf_counter() - start
    timings["diffusion_steps"] = float(len(steps))
    timings["diffusion_per_step_s"] = float(np.median(steps)) if steps else 0.0

    start = time.perf_counter()
    (ecg,) = graphs["vae_decoder"].run({"latent": latent}).values()
    timings["vae_decode_s"] = time.perf_counter() - start
    return Diffusion(latent=latent, ecg_102=np.asarray(ecg[0], np.float32), timings=timings)


def generated_record(ecg_102: np.ndarray, meta: Mapping[str, Any]) -> EcgRecord:
    """12 x 1024 at 102.4 Hz -> a 10 s, 500 Hz, 12-lead record; III, aVR, aVL, aVF recomputed from I and II (the
    relation is exact, so it is enforced rather than trusted to the decoder)."""
    signal = from_generator_space(ecg_102)
    for name, values in derive_limb_leads(signal[0], signal[1]).items():
        signal[STANDARD_LEADS.index(name)] = values
    return EcgRecord(signal, fs=500.0, leads=STANDARD_LEADS, name="generated", meta=dict(meta))
