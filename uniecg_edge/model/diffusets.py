"""Loaders for the published DiffuSETS checkpoints (``unet_all.pth``, ``vae_model.pth``; HF Laiyf/DiffuSETS[_KT]).

The files are pickles, so they are read ONLY with ``torch.load(..., weights_only=True)`` (tensors and plain
containers; no code runs). Accepted layouts: a raw state dict, or one wrapped under a common key
(``state_dict``, ``model_state_dict``, ``model``, ``module``, ``net``, ``ema``) and/or with every key
prefixed by ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile). The VAE file holds
``{"encoder": ..., "decoder": ...}`` (flat ``encoder.*`` / ``decoder.*`` keys are accepted too).

Name mapping: the UNet's parameter names equal the published ones; the VAE's published ``nn.Sequential`` index
``i.*`` becomes ``layers.i.*``. The text dimension D (1536 for ``unet_all.pth``, 8192 for the KT demo) and the
other UNet sizes are read from the weight shapes. Any missing, unexpected or wrongly shaped tensor raises a
one-line :class:`ConfigError` naming the file and the first bad key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .unet import ConditionalUNet1d, UNetConfig
from .vae import EcgVae, VaeConfig, VaeDecoder

logger = logging.getLogger(__name__)

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "ema")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU; unreadable files raise a one-line ConfigError."""
    src = Path(path)
    if not src.is_file():
        raise ConfigError(f"{src}: checkpoint file not found")
    try:
        return torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a usable weights file"
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{src}: not a weights-only torch checkpoint ({reason})") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def unwrap_state_dict(obj: Any, path: Path) -> Any:
    """Descend through wrapper keys until a mapping whose values are tensors (or the VAE's pair of them)."""
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj


def strip_prefixes(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove ``module.`` / ``_orig_mod.`` when every key carries it (repeatedly, in any order)."""
    out = dict(state)
    changed = True
    while changed and out:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    return out


def _tensor_dict(obj: Any, path: Path, part: str) -> dict[str, Tensor]:
    obj = unwrap_state_dict(obj, path)
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise ConfigError(f"{path}: {part}entry {key!r} is a {type(value).__name__}, not a tensor")
    return strip_prefixes(obj)


def load_mapped(
    module: nn.Module, published: Mapping[str, Tensor], prefix: str, path: Path, part: str = ""
) -> nn.Module:
    """Copy ``published`` into ``module`` as ``prefix + key``; every tensor must land with its exact shape.

    Errors name the published key (``part`` is prepended, e.g. ``decoder.``).
    """
    expected = module.state_dict()
    for key in published:
        if prefix + key not in expected:
            raise ConfigError(f"{path}: unexpected key {part}{key!r} (not part of {type(module).__name__})")
    for name, target in expected.items():
        key = name[len(prefix) :]
        if key not in published:
            raise ConfigError(f"{path}: missing key {part}{key!r} for {type(module).__name__}")
        got = published[key]
        if tuple(got.shape) != tuple(target.shape):
            raise ConfigError(
                f"{path}: key {part}{key!r} has shape {tuple(got.shape)}, expected {tuple(target.shape)}"
            )
        if not got.is_floating_point():
            raise ConfigError(f"{path}: key {part}{key!r} has dtype {got.dtype}, expected floating point")
    module.load_state_dict({prefix + k: v for k, v in published.items()}, strict=True)
    return module


def _shape(state: Mapping[str, Tensor], key: str, ndim: int, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise ConfigError(f"{path}: missing key {key!r}; not a DiffuSETS UNet state dict")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise ConfigError(f"{path}: key {key!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def infer_unet_config(state: Mapping[str, Tensor], path: Path) -> UNetConfig:
    """Read the UNet sizes (levels, kernels, D, T, time and attention widths) from the published weight shapes."""
    downs = {int(m.group(1)) for k in state if (m := re.match(r"downsampling_blocks\.(\d+)\.", k))}
    first = "downsampling_blocks.0.block."
    c_short, n_channels, kernel = _shape(state, first + "pre_shortcut_convs.weight", 3, path)
    combiner = _shape(state, first + "cross_attention.value_combiner.weight", 2, path)
    steps, time_dim = _shape(state, first + "time_emb.embeddings", 2, path)
    time_hidden = _shape(state, first + "time_emb.fc1.weight", 2, path)[0]
    hidden = _shape(state, first + "self_attention.to_q.weight", 2, path)[0]
    bottleneck_kernel = _shape(state, "bottelneck.bottleneck_conv1.weight", 3, path)[2]
    bottleneck_hidden = _shape(state, "bottelneck.self_attention.to_q.weight", 2, path)[0]
    if hidden % n_channels:
        raise ConfigError(f"{path}: attention width {hidden} is not a multiple of {n_channels} input channels")
    try:
        return UNetConfig(
            n_channels=n_channels,
            num_levels=max(downs, default=0) + 2,
            kernel_size=kernel,
            cond_dim=combiner[1] - 3,
            num_train_timesteps=steps,
            time_embed_dim=time_dim,
            time_hidden_dim=time_hidden,
            attn_hidden_factor=hidden // n_channels,
            bottleneck_kernel_size=bottleneck_kernel,
            bottleneck_hidden_dim=bottleneck_hidden,
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: unsupported UNet shape ({exc})") from None


def load_diffusets_unet(path: str | os.PathLike[str], cond_dim: int | None = None) -> ConditionalUNet1d:
    """The published DiffuSETS UNet (``unet_all.pth``) as a :class:`ConditionalUNet1d` in eval mode.

    ``cond_dim`` (1536 or 8192), when given, must match the text dimension read from the weights.
    """
    src = Path(path)
    state = _tensor_dict(read_checkpoint(src), src, "")
    config = infer_unet_config(state, src)
    if cond_dim is not None and cond_dim != config.cond_dim:
        raise ConfigError(f"{src}: weights are for text dimension {config.cond_dim}, not {cond_dim}")
    unet = load_mapped(ConditionalUNet1d(config), state, "", src)
    logger.info("loaded DiffuSETS UNet from %s (D=%d)", src, config.cond_dim)
    return unet.eval()  # type: ignore[return-value]


def _vae_parts(obj: Any, path: Path) -> dict[str, dict[str, Tensor]]:
    obj = unwrap_state_dict(obj, path)
    if _is_state_dict(obj):  # flat "encoder.*" / "decoder.*" keys
        flat = strip_prefixes(obj)
        obj = {
            part: {k[len(part) + 1 :]: v for k, v in flat.items() if k.startswith(part + ".")}
            for part in ("encoder", "decoder")
        }
        obj = {part: sd for part, sd in obj.items() if sd}
    return {part: _tensor_dict(sd, path, f"{part}.") for part, sd in obj.items() if part in ("encoder", "decoder")}


def load_diffusets_vae(path: str | os.PathLike[str]) -> EcgVae:
    """The published DiffuSETS VAE (``vae_model.pth``: encoder and decoder) as an :class:`EcgVae` in eval mode."""
    src = Path(path)
    parts = _vae_parts(read_checkpoint(src), src)
    vae = EcgVae(VaeConfig.diffusets())
    for part in ("encoder", "decoder"):
        if part not in parts:
            raise ConfigError(f"{src}: missing key {part!r}; not a DiffuSETS VAE checkpoint")
        load_mapped(getattr(vae, part), parts[part], "layers.", src, f"{part}.")
    logger.info("loaded DiffuSETS VAE from %s", src)
    return vae.eval()


def load_diffusets_vae_decoder(path: str | os.PathLike[str]) -> VaeDecoder:
    """Only the decoder of ``vae_model.pth`` (what the device needs) as a :class:`VaeDecoder` in eval mode."""
    src = Path(path)
    parts = _vae_parts(read_checkpoint(src), src)
    if "decoder" not in parts:
        raise ConfigError(f"{src}: missing key 'decoder'; not a DiffuSETS VAE checkpoint")
    decoder = load_mapped(VaeDecoder(VaeConfig.diffusets()), parts["decoder"], "layers.", src, "decoder.")
    return decoder.eval()  # type: ignore[return-value]
