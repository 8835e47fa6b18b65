"""``save_pretrained`` / ``from_pretrained`` for the package's own modules: ``config.json`` + safetensors only."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..errors import ConfigError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

M = TypeVar("M", bound="PretrainedMixin")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build config dataclass ``cls`` from ``data``; unknown keys raise a ``ConfigError`` naming them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown config keys {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        if isinstance(value, list):
            value = tuple(value)
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


class PretrainedMixin:
    """Mixin for ``torch.nn.Module`` subclasses built as ``cls(config)`` from a frozen config dataclass."""

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_NAME).write_text(json.dumps(config_to_dict(self.config), indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
        return out

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike[str]) -> M:
        from safetensors.torch import load_file

        src = Path(directory)
        config_path, weights_path = src / CONFIG_NAME, src / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ConfigError(f"{src}: not a {cls.__name__} checkpoint ({path.name} missing)")
        try:
            data = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{config_path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        model = cls(config_from_dict(cls.config_class, data))  # type: ignore[call-arg]
        state = load_file(str(weights_path))
        expected = model.state_dict()  # type: ignore[attr-defined]
        for key, tensor in state.items():
            if key in expected and tuple(expected[key].shape) != tuple(tensor.shape):
                need = tuple(expected[key].shape)
                raise ConfigError(f"{weights_path}: {key} has shape {tuple(tensor.shape)}, the config needs {need}")
        missing, unexpected = model.load_state_dict(state, strict=False)  # type: ignore[attr-defined]
        if missing or unexpected:
            raise ConfigError(
                f"{weights_path}: weights do not match {cls.__name__} "
                f"(missing {len(missing)}: {', '.join(list(missing)[:3])}; unexpected {len(unexpected)})"
            )
        return model
