"""``accelerate`` helpers shared by the distillation loops: the accelerator, the step loop, checkpoints.

One loop, :func:`train_steps`, drives every phase: ``accelerator.accumulate`` for gradient accumulation,
``accelerator.backward``, gradient clipping on sync steps, a tqdm bar on the main process only, and a checkpoint
every ``checkpoint_every`` optimizer steps. A checkpoint is a folder written by ``accelerator.save_state``
(model weights as safetensors; optimizer, RNG states as ``torch.save`` files that ``load_state`` reads back
with ``weights_only=True``) plus ``train_state.json`` (phase, stage, step, loss history), the only state of ours.
No custom objects are registered with accelerate: those would be unpickled with ``weights_only=False``.

Batches must be a pure function of (seed, phase, stage, step, process): then a resumed run sees exactly the
batches an uninterrupted run would, and (on one device, deterministic kernels) ends bit for bit the same.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError

logger = logging.getLogger(__name__)

TRAIN_STATE_NAME = "train_state.json"
LATEST_NAME = "latest.json"
MIXED_PRECISIONS = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class AccelConfig:
    """How the loops run: accumulation, precision, device, checkpoint cadence and retention."""

    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    cpu: bool = False
    checkpoint_every: int = 0  # optimizer steps between checkpoints; 0: only at the end of each phase / stage
    keep_checkpoints: int = 2
    max_grad_norm: float = 1.0  # 0 disables clipping

    def __post_init__(self) -> None:
        if self.gradient_accumulation_steps < 1:
            raise ConfigError(f"gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ConfigError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, "
                              f"got {self.mixed_precision!r}")
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            raise ConfigError("checkpoint_every must be >= 0 and keep_checkpoints >= 1")


@dataclass
class TrainState:
    """Where a run stands; saved as JSON beside every accelerate checkpoint."""

    phase: str
    stage: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"{self.phase}-s{self.stage:02d}-{self.step:08d}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(phase=str(data["phase"]), stage=int(data["stage"]), step=int(data["step"]),
                   history=[dict(h) for h in data.get("history", [])])


def make_accelerator(cfg: AccelConfig) -> Any:
    """An ``accelerate.Accelerator`` for ``cfg`` (launch under ``accelerate launch`` for several GPUs or nodes)."""
    from accelerate import Accelerator

    return Accelerator(gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                       mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)


def progress(accelerator: Any, total: int, *, initial: int = 0, desc: str = "") -> Any:
    """A tqdm bar shown on the local main process only (silent elsewhere)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False,
                disable=not accelerator.is_local_main_process)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def train_steps(
    accelerator: Any,
    module: nn.Module,
    optimizer: Any,
    compute_losses: Callable[[int, int], dict[str, Tensor]],
    state: TrainState,
    total_steps: int,
    *,
    cfg: AccelConfig,
    checkpoint: Callable[[TrainState], None] | None = None,
    desc: str = "",
) -> TrainState:
    """Run optimizer steps ``state.step .. total_steps - 1``; ``compute_losses(step, micro)`` returns a dict
    with ``"total"`` (the loss to minimise) and any other scalars to log. ``module`` is the prepared module
    whose gradients are synchronised (``accelerator.accumulate``). Returns ``state`` advanced to ``total_steps``.
    """
    accum = cfg.gradient_accumulation_steps
    params = trainable_parameters(module)
    bar = progress(accelerator, total_steps, initial=state.step, desc=desc)
    try:
        for step in range(state.step, total_steps):
            sums: dict[str, float] = {}
            for micro in range(accum):
                with accelerator.accumulate(module):
                    losses = compute_losses(step, micro)
                    accelerator.backward(losses["total"])
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                for name, value in losses.items():
                    mean = accelerator.reduce(value.detach().float().reshape(1), reduction="mean")
                    sums[name] = sums.get(name, 0.0) + float(mean) / accum
            state.step = step + 1
            state.history.append({"step": float(state.step), **sums})
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in sums.items() if k != "step"}, refresh=False)
            if checkpoint is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 \
                    and state.step < total_steps:
                checkpoint(state)
    finally:
        bar.close()
    return state


# ---- checkpoints -----------------------------------------------------------------------------------------
def save_checkpoint(accelerator: Any, root: str | Path, state: TrainState, *, keep: int = 2,
                    with_accelerator_state: bool = True) -> Path:
    """``accelerator.save_state`` into ``root/<tag>`` plus ``train_state.json``; ``root/latest.json`` names it.

    ``with_accelerator_state=False`` writes the state alone: a phase or stage boundary (step 0), where nothing
    prepared needs restoring. Older checkpoints beyond the newest ``keep`` are deleted (on the main process).
    """
    root = Path(root)
    target = root / state.tag
    accelerator.wait_for_everyone()
    if with_accelerator_state:
        accelerator.save_state(str(target), safe_serialization=True)
    if accelerator.is_main_process:
        target.mkdir(parents=True, exist_ok=True)
        (target / TRAIN_STATE_NAME).write_text(json.dumps(state.to_dict()) + "\n")
        tmp = root / (LATEST_NAME + ".tmp")
        tmp.write_text(json.dumps({"checkpoint": target.name}) + "\n")
        tmp.replace(root / LATEST_NAME)
        _prune(root, keep)
    accelerator.wait_for_everyone()
    logger.info("checkpoint %s", target)
    return target


def _prune(root: Path, keep: int) -> None:
    folders = sorted((p for p in root.iterdir() if p.is_dir() and (p / TRAIN_STATE_NAME).is_file()),
                     key=lambda p: p.stat().st_mtime_ns)
    for old in folders[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(root: str | Path) -> tuple[Path, TrainState] | None:
    """The checkpoint ``root/latest.json`` names and its state, or None when there is none."""
    pointer = Path(root) / LATEST_NAME
    if not pointer.is_file():
        return None
    try:
        folder = Path(root) / json.loads(pointer.read_text())["checkpoint"]
        state = TrainState.from_dict(json.loads((folder / TRAIN_STATE_NAME).read_text()))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{pointer}: unreadable checkpoint pointer ({exc})") from None
    return folder, state


def load_checkpoint(accelerator: Any, folder: str | Path) -> TrainState:
    """Restore the prepared objects (and RNG states) from ``folder``; return its :class:`TrainState`."""
    folder = Path(folder)
    if not (folder / TRAIN_STATE_NAME).is_file():
        raise ConfigError(f"{folder}: not a training checkpoint ({TRAIN_STATE_NAME} missing)")
    accelerator.load_state(str(folder))
    return TrainState.from_dict(json.loads((folder / TRAIN_STATE_NAME).read_text()))


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer keys (seed, phase, stage, step, process): batches as a pure function."""
    value = 0
    for key in keys:
        value = (value * 1_000_003 + int(key) + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(value)


def release(accelerator: Any) -> None:
    """Forget the prepared objects (between phases / stages) so the next ``save_state`` holds only the new ones."""
    accelerator.free_memory()
