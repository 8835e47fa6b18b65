"""Load the published GEM / ECG-CoCa / ECG-R1 ECG tower and projector weights into ``EcgEncoder`` / ``EcgProjector``.

Published names (``lanxiang1017/GEM`` ``ecg_coca/open_clip/transformer.py`` ``EcgTransformer``, the same class as
ECG-Chat's; LLaVA's ``mm_projector`` builder; ECG-R1's vLLM weight mapper):

- tower, under a prefix that depends on the file: ``""`` (the bare tower), ``ecg.`` / ``visual.`` (a CoCa
  checkpoint, ``module.`` stripped), ``model.ecg_tower.`` (ECG-R1), ``model.ecg_tower.ecg_tower.`` (a LLaVA
  checkpoint whose tower wrapper keeps the open_clip module as ``.ecg_tower``):
  ``conv1.weight`` (W, leads, patch) (no bias), ``class_embedding`` (W), ``positional_embedding`` (1 + P, W),
  ``ln_pre.{weight,bias}``, ``transformer.resblocks.{i}.{ln_1, attn.in_proj_weight, attn.in_proj_bias,
  attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``; ``ln_post``, ``proj`` and ``attn_pool*`` are off GEM's path and
  ignored.
- projector: GEM ``model.ecg_projector.{weight,bias}`` (Linear 768 -> 1024) + ``model.mm_projector.{0,2}.*``
  (mlp2x_gelu 1024 -> 4096 -> 4096); ECG-R1 ``model.ecg_projector.{0,2}.*`` (mlp2x_gelu 768 -> H);
  ECG-Chat ``model.mm_projector.{0,2}.*`` alone.

``.safetensors`` files (or folders of shards) are read lazily, tensor by tensor; ``.pt/.bin/.pth/.ckpt`` only
through ``torch.load(..., weights_only=True)``. Width, leads, patch, length, layers and MLP width come from the
shapes; the head count is not stored anywhere, so it defaults to open_clip's width // 64 (12 for GEM).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .ecg_encoder import EcgEncoder, EcgEncoderConfig
from .projector import EcgProjector, ProjectorConfig

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
HEAD_WIDTH = 64  # open_clip's default head width: heads = width // 64

# published tower name -> this package's EcgEncoder name (outside the blocks)
TOWER_NAMES = {
    "conv1.weight": "patch_embed.weight",
    "class_embedding": "cls_token",
    "positional_embedding": "pos_embed",
    "ln_pre.weight": "ln_pre.weight",
    "ln_pre.bias": "ln_pre.bias",
}
# published name inside ``transformer.resblocks.{i}.`` -> name inside ``blocks.{i}.``
BLOCK_NAMES = {
    "ln_1.weight": "norm1.weight",
    "ln_1.bias": "norm1.bias",
    "attn.in_proj_weight": "attn.qkv.weight",
    "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj.weight": "attn.proj.weight",
    "attn.out_proj.bias": "attn.proj.bias",
    "ln_2.weight": "norm2.weight",
    "ln_2.bias": "norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
TOWER_TOP_LEVEL = ("conv1.", "class_embedding", "positional_embedding", "ln_pre.", "transformer.")
_BLOCK_RE = re.compile(r"^transformer\.resblocks\.(\d+)\.")


class Checkpoint:
    """Read-only view of a weights file, folder or in-memory state dict: names, shapes, tensors on demand.

    A leading ``module.`` (DistributedDataParallel) is stripped from every name.
    """

    def __init__(self, label: str, shapes: dict[str, tuple[int, ...]], fetch: Callable[[str], torch.Tensor]):
        self.label = label
        self._shapes = shapes
        self._fetch = fetch

    def keys(self) -> list[str]:
        return list(self._shapes)

    def __contains__(self, key: object) -> bool:
        return key in self._shapes

    def shape(self, key: str) -> tuple[int, ...]:
        return self._shapes[key]

    def tensor(self, key: str) -> torch.Tensor:
        return self._fetch(key)

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {message}")

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {key: self.tensor(key) for key in self.keys()}


def open_checkpoint(source: str | os.PathLike[str] | Mapping[str, Any] | Checkpoint) -> Checkpoint:
    """A ``Checkpoint`` for a state dict, a ``.safetensors`` / pickle-free ``.pt`` file, or a checkpoint folder."""
    if isinstance(source, Checkpoint):
        return source
    if isinstance(source, Mapping):
        return _from_mapping("<state dict>", source)
    path = Path(source)
    if path.is_dir():
        return _from_folder(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        return _from_safetensors(str(path), [path])
    if path.suffix in PICKLE_SUFFIXES:
        return _from_mapping(str(path), _torch_load(path))
    raise ConfigError(f"{path}: unknown checkpoint format (expected .safetensors, .pt, .pth, .bin or .ckpt)")


def _strip(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _from_mapping(label: str, state: Mapping[str, Any]) -> Checkpoint:
    for wrapper in ("state_dict", "model", "module"):
        inner = state.get(wrapper) if wrapper in state else None
        if isinstance(inner, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            state = inner
            break
    tensors = {_strip(k): v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise ConfigError(f"{label}: no tensors in the checkpoint")
    return Checkpoint(label, {k: tuple(v.shape) for k, v in tensors.items()}, tensors.__getitem__)


def _torch_load(path: Path) -> Mapping[str, Any]:
    import pickle

    try:
        try:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling refused"
        raise ConfigError(f"{path}: not loadable with weights_only=True ({first_line})") from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise ConfigError(f"{path}: unreadable checkpoint ({type(exc).__name__})") from None
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: checkpoint holds a {type(loaded).__name__}, not a state dict")
    return loaded


def _from_safetensors(label: str, files: list[Path]) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    owner: dict[str, tuple[Path, str]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    shapes[_strip(key)] = tuple(handle.get_slice(key).get_shape())
                    owner[_strip(key)] = (file, key)
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"{file}: unreadable safetensors file ({exc})") from None

    def fetch(key: str) -> torch.Tensor:
        file, original = owner[key]
        with safe_open(str(file), framework="pt") as handle:
            return handle.get_tensor(original)

    return Checkpoint(label, shapes, fetch)


def _from_folder(folder: Path) -> Checkpoint:
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        return _from_safetensors(str(folder), shards)
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if not pickles:
        raise ConfigError(f"{folder}: no *.safetensors or *.bin/*.pt weights in the folder")
    merged: dict[str, Any] = {}
    for file in pickles:
        merged.update(_from_mapping(str(file), _torch_load(file)).as_dict())
    return _from_mapping(str(folder), merged)


# --------------------------------------------------------------------------------------------------- tower


def find_tower_prefix(ckpt: Checkpoint) -> str:
    """The prefix under which the ECG-CoCa tower's ``class_embedding`` and ``conv1.weight`` sit."""
    suffix = "class_embedding"
    found = sorted(
        key[: -len(suffix)]
        for key in ckpt.keys()
        if key.endswith(suffix)
        and (key[: -len(suffix)] == "" or key[: -len(suffix)].endswith("."))
        and key[: -len(suffix)] + "conv1.weight" in ckpt
        and len(ckpt.shape(key[: -len(suffix)] + "conv1.weight")) == 3
    )
    if not found:
        raise ckpt.error("no ECG-CoCa tower (no '<prefix>class_embedding' beside a 3-D '<prefix>conv1.weight')")
    if len(found) > 1:
        raise ckpt.error(f"several ECG towers ({', '.join(repr(p) for p in found)}): pass prefix=")
    return found[0]


def published_tower_shapes(config: EcgEncoderConfig) -> dict[str, tuple[int, ...]]:
    """Published tower names on GEM's path -> shapes, for ``config``."""
    w, m = config.width, config.mlp_width
    shapes: dict[str, tuple[int, ...]] = {
        "conv1.weight": (w, config.n_leads, config.patch_size),
        "class_embedding": (w,),
        "positional_embedding": (config.num_tokens, w),
        "ln_pre.weight": (w,),
        "ln_pre.bias": (w,),
    }
    block = {
        "ln_1.weight": (w,),
        "ln_1.bias": (w,),
        "attn.in_proj_weight": (3 * w, w),
        "attn.in_proj_bias": (3 * w,),
        "attn.out_proj.weight": (w, w),
        "attn.out_proj.bias": (w,),
        "ln_2.weight": (w,),
        "ln_2.bias": (w,),
        "mlp.c_fc.weight": (m, w),
        "mlp.c_fc.bias": (m,),
        "mlp.c_proj.weight": (w, m),
        "mlp.c_proj.bias": (w,),
    }
    for i in range(config.layers):
        shapes.update({f"transformer.resblocks.{i}.{name}": shape for name, shape in block.items()})
    return shapes


def published_to_encoder_name(name: str) -> str:
    """This package's ``EcgEncoder`` parameter name for a published tower name."""
    if name in TOWER_NAMES:
        return TOWER_NAMES[name]
    match = _BLOCK_RE.match(name)
    if match and name[match.end() :] in BLOCK_NAMES:
        return f"blocks.{match.group(1)}.{BLOCK_NAMES[name[match.end() :]]}"
    raise KeyError(name)


def tower_config_from_checkpoint(ckpt: Checkpoint, prefix: str, heads: int | None = None) -> EcgEncoderConfig:
    """Infer the ``EcgEncoderConfig`` from the tower's shapes (heads: given, else width // 64)."""

    def shape(name: str, ndim: int) -> tuple[int, ...]:
        key = prefix + name
        if key not in ckpt:
            raise ckpt.error(f"missing key {key}")
        found = ckpt.shape(key)
        if len(found) != ndim:
            raise ckpt.error(f"{key} has shape {list(found)}, expected {ndim} dimensions")
        return found

    width, n_leads, patch = shape("conv1.weight", 3)
    num_tokens = shape("positional_embedding", 2)[0]
    layer_ids = sorted(
        {int(m.group(1)) for k in ckpt.keys() if k.startswith(prefix) and (m := _BLOCK_RE.match(k[len(prefix) :]))}
    )
    if not layer_ids:
        raise ckpt.error(f"missing key {prefix}transformer.resblocks.0.ln_1.weight (no transformer blocks)")
    if layer_ids != list(range(len(layer_ids))):
        missing = sorted(set(range(layer_ids[-1] + 1)) - set(layer_ids))[0]
        raise ckpt.error(f"missing key {prefix}transformer.resblocks.{missing}.ln_1.weight (blocks not contiguous)")
    mlp_width = shape("transformer.resblocks.0.mlp.c_fc.weight", 2)[0]
    if heads is None:
        if width % HEAD_WIDTH:
            raise ckpt.error(f"width {width} is not a multiple of {HEAD_WIDTH}: pass heads= explicitly")
        heads = width // HEAD_WIDTH
    try:
        return EcgEncoderConfig(
            n_leads=n_leads,
            seq_length=(num_tokens - 1) * patch,
            patch_size=patch,
            width=width,
            layers=len(layer_ids),
            heads=heads,
            mlp_ratio=mlp_width / width,
        )
    except ConfigError as exc:
        raise ckpt.error(f"tower shapes give an invalid encoder ({exc})") from None


def plan_tower(ckpt: Checkpoint, prefix: str, config: EcgEncoderConfig) -> dict[str, str]:
    """``{encoder name: checkpoint key}`` after checking every name and shape; unknown tower keys are errors."""
    expected = published_tower_shapes(config)
    plan: dict[str, str] = {}
    for name, want in expected.items():
        key = prefix + name
        if key not in ckpt:
            raise ckpt.error(f"missing key {key}")
        if ckpt.shape(key) != want:
            raise ckpt.error(f"{key} has shape {list(ckpt.shape(key))}, expected {list(want)}")
        plan[published_to_encoder_name(name)] = key
    for key in ckpt.keys():
        if (
            key.startswith(prefix)
            and key[len(prefix) :].startswith(TOWER_TOP_LEVEL)
            and key[len(prefix) :] not in expected
        ):
            raise ckpt.error(f"unexpected tower key {key} (architecture differs from ECG-CoCa's)")
    return plan


def load_gem_ecg_tower(
    source: str | os.PathLike[str] | Mapping[str, Any] | Checkpoint,
    heads: int | None = None,
    prefix: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> EcgEncoder:
    """An ``EcgEncoder`` holding the published ECG-CoCa tower weights of ``source`` (file, folder or state dict)."""
    ckpt = open_checkpoint(source)
    prefix = find_tower_prefix(ckpt) if prefix is None else prefix
    config = tower_config_from_checkpoint(ckpt, prefix, heads)
    plan = plan_tower(ckpt, prefix, config)
    model = _assign(EcgEncoder, config, {name: ckpt.tensor(key) for name, key in plan.items()}, dtype)
    logger.info("loaded ECG tower %s from %s (prefix %r)", config, ckpt.label, prefix)
    return model


# ----------------------------------------------------------------------------------------------- projector


def _projector_layout(ckpt: Checkpoint, prefix: str | None) -> tuple[str, dict[str, str]]:
    """Which published projector layout ``ckpt`` holds: (description, {projector name: checkpoint key})."""
    layouts = {
        "GEM ecg_projector + mm_projector": {
            "bridge": "ecg_projector",
            "fc1": "mm_projector.0",
            "fc2": "mm_projector.2",
        },
        "ECG-R1 ecg_projector (mlp2x_gelu)": {"fc1": "ecg_projector.0", "fc2": "ecg_projector.2"},
        "LLaVA mm_projector (mlp2x_gelu)": {"fc1": "mm_projector.0", "fc2": "mm_projector.2"},
    }
    for description, parts in layouts.items():
        anchor = parts.get("bridge", parts["fc1"]) + ".weight"
        prefixes = sorted(
            k[: -len(anchor)]
            for k in ckpt.keys()
            if k.endswith(anchor) and (k == anchor or k[: -len(anchor)].endswith("."))
        )
        if prefix is not None:
            prefixes = [p for p in prefixes if p == prefix]
        complete = [p for p in prefixes if all(f"{p}{path}.weight" in ckpt for path in parts.values())]
        if len(complete) > 1:
            raise ckpt.error(f"several projectors ({', '.join(repr(p) for p in complete)}): pass prefix=")
        if complete:
            p = complete[0]
            keys = {}
            for part, path in parts.items():
                for leaf in ("weight", "bias"):
                    key = f"{p}{path}.{leaf}"
                    if key not in ckpt:
                        raise ckpt.error(f"missing key {key}")
                    keys[f"{part}.{leaf}"] = key
            return description, keys
    raise ckpt.error(
        "no ECG projector (no 'ecg_projector.weight', 'ecg_projector.0.weight' or 'mm_projector.0.weight')"
    )


def load_gem_projector(
    source: str | os.PathLike[str] | Mapping[str, Any] | Checkpoint,
    prefix: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> EcgProjector:
    """An ``EcgProjector`` holding the published projector weights of ``source`` (GEM, ECG-R1 or ECG-Chat layout)."""
    ckpt = open_checkpoint(source)
    description, keys = _projector_layout(ckpt, prefix)

    def matrix(part: str) -> tuple[int, int]:
        shape = ckpt.shape(keys[f"{part}.weight"])
        if len(shape) != 2:
            raise ckpt.error(f"{keys[part + '.weight']} has shape {list(shape)}, expected 2 dimensions")
        return shape[0], shape[1]

    fc1_out, fc1_in = matrix("fc1")
    fc2_out, fc2_in = matrix("fc2")
    mid_dim = None
    in_dim = fc1_in
    if "bridge.weight" in keys:
        mid_dim, in_dim = matrix("bridge")
        if mid_dim != fc1_in:
            raise ckpt.error(f"{keys['fc1.weight']} has input width {fc1_in}, expected {mid_dim} (ecg_projector out)")
    if fc2_in != fc1_out:
        raise ckpt.error(f"{keys['fc2.weight']} has input width {fc2_in}, expected {fc1_out}")
    config = ProjectorConfig(in_dim=in_dim, hidden_dim=fc1_out, out_dim=fc2_out, mid_dim=mid_dim)
    for name, key in keys.items():
        want = (matrix(name.split(".")[0])[0],) if name.endswith("bias") else None
        if want is not None and ckpt.shape(key) != want:
            raise ckpt.error(f"{key} has shape {list(ckpt.shape(key))}, expected {list(want)}")
    model = _assign(EcgProjector, config, {name: ckpt.tensor(key) for name, key in keys.items()}, dtype)
    logger.info("loaded %s projector %s from %s", description, config, ckpt.label)
    return model


def load_gem(
    source: str | os.PathLike[str] | Mapping[str, Any],
    heads: int | None = None,
) -> tuple[EcgEncoder, EcgProjector]:
    """Tower and projector from one checkpoint (e.g. a GEM or ECG-R1 model folder), opened once."""
    ckpt = open_checkpoint(source)
    return load_gem_ecg_tower(ckpt, heads=heads), load_gem_projector(ckpt)


def _assign(cls: Any, config: Any, tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> Any:
    """Build ``cls(config)`` without random initialisation and give it ``tensors`` (copied, cast to ``dtype``)."""
    with torch.device("meta"):
        model = cls(config)
    state = {name: t.to(dtype=dtype, copy=True).contiguous() for name, t in tensors.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    return model
