"""LLM-side knowledge distillation: teacher UniECG -> a smaller student sharing its tokenizer.

Each example gives two sequences (left-padded, LLaVA v1 prompts of the model's ``PromptConfig``):

* **interpret**: ``<s>`` + interpret prompt (the ECG embeddings spliced at ``<ecg>``) + report + ``</s>``;
  labels are the report tokens and ``</s>``;
* **generate**: ``<s>`` + generate prompt (request = the report) + ``[ECG_0] .. [ECG_K-1]``; labels are the K
  [ECG] tokens (the model learns to choose generation), and the last-layer states at those K positions go through
  the generation head: the condition vector the UNet consumes.

Loss (edge-facts §10; ``a`` = alpha, ``T`` = temperature, ``w`` = gen_weight)::

    total = (1 - a) * CE(student, labels)                        # over all label positions of both sequences
          + a * T^2 * KL(softmax(teacher/T) || softmax(student/T))   # same positions, mean per position
          + w * (MSE(c_s, c_t) + mean(1 - cos(c_s, c_t)))      # generation-head outputs at the [ECG] tokens
          + w_enc * MSE(W c_enc_s, c_enc_t)                    # only with a student ECG encoder (student.py)

``kd`` (everything but the CE term) is exactly zero when the student is the teacher.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..model.splice import expand_ids_for_splice, splice_ecg_embeddings
from ..model.uniecg import UniEcgModel

logger = logging.getLogger(__name__)

IGNORE = -100
SEX_CODES = {"M": 1.0, "F": 0.0}


@dataclass(frozen=True)
class KdConfig:
    """LLM-side distillation settings."""

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    temperature: float = 2.0
    alpha: float = 0.5
    gen_weight: float = 1.0
    encoder_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be within 0..1, got {self.alpha}")
        if self.temperature <= 0 or self.lr <= 0:
            raise ConfigError("temperature and lr must be positive")
        if self.steps < 0 or self.batch_size < 1 or self.gen_weight < 0 or self.encoder_weight < 0:
            raise ConfigError("steps >= 0, batch_size >= 1 and non-negative loss weights are required")


@dataclass
class DistillExample:
    """An ECG (12, 5000) mV with its report and the patient's sex (M/F), age and heart rate; ``question`` replaces
    the interpret prompt's default question (a grounded one, see :mod:`uniecg_edge.grounding`)."""

    ecg: np.ndarray
    report: str
    sex: str
    age: float
    hr: float
    question: str | None = None


@dataclass
class KdBatch:
    ecg: Tensor  # (B, 12, 5000)
    interpret_ids: Tensor  # (B, S1) with one <ecg> per row
    interpret_mask: Tensor
    interpret_labels: Tensor  # aligned with interpret_ids, IGNORE outside the report
    generate_ids: Tensor  # (B, S2), the K [ECG] tokens last
    generate_mask: Tensor
    generate_labels: Tensor
    sex: Tensor  # (B, 1, 1)
    age: Tensor
    hr: Tensor

    def to(self, device: torch.device | str) -> KdBatch:
        return KdBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _left_pad(rows: list[list[int]], labels: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    lab = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row, target) in enumerate(zip(rows, labels, strict=True)):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
        lab[i, width - len(row):] = torch.tensor(target)
    return ids, mask, lab


def collate(model: UniEcgModel, examples: Sequence[DistillExample]) -> KdBatch:
    """Tokenise ``examples`` into the two left-padded sequences of a :class:`KdBatch`."""
    tok = model.tokenizer
    prompts = model.config.prompt
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    pad = tok.pad_token_id if tok.pad_token_id is not None else model.eos_token_id
    interp, interp_lab, gen, gen_lab = [], [], [], []
    for ex in examples:
        if ex.sex not in SEX_CODES:
            raise ConfigError(f"example sex must be M or F, got {ex.sex!r}")
        prompt = bos + tok(prompts.interpret_prompt(ex.question), add_special_tokens=False)["input_ids"]
        answer = tok(" " + ex.report.strip(), add_special_tokens=False)["input_ids"] + [model.eos_token_id]
        interp.append(prompt + answer)
        interp_lab.append([IGNORE] * len(prompt) + answer)
        request = bos + tok(prompts.generate_prompt(ex.report.strip()), add_special_tokens=False)["input_ids"]
        gen.append(request + list(model.gen_token_ids))
        gen_lab.append([IGNORE] * len(request) + list(model.gen_token_ids))
    i_ids, i_mask, i_lab = _left_pad(interp, interp_lab, pad)
    g_ids, g_mask, g_lab = _left_pad(gen, gen_lab, pad)

    def scalars(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1)

    return KdBatch(
        ecg=torch.from_numpy(np.stack([np.asarray(ex.ecg, dtype=np.float32) for ex in examples])),
        interpret_ids=i_ids, interpret_mask=i_mask, interpret_labels=i_lab,
        generate_ids=g_ids, generate_mask=g_mask, generate_labels=g_lab,
        sex=scalars([SEX_CODES[ex.sex] for ex in examples]), age=scalars([ex.age for ex in examples]),
        hr=scalars([ex.hr for ex in examples]),
    )


@dataclass
class LlmOutputs:
    logits: Tensor  # (P, V) at the label positions of both sequences, in a fixed order
    targets: Tensor  # (P,)
    cond: Tensor  # (B, 1, D) generation-head output at the [ECG] tokens
    encoder_tokens: Tensor  # (B, N, W) ECG-encoder output


def llm_outputs(model: UniEcgModel, batch: KdBatch) -> LlmOutputs:
    """Run ``model`` on both sequences; logits gathered where the next token is a label."""
    encoder_tokens = model.ecg_encoder(batch.ecg)
    ecg_embeds = model.projector(encoder_tokens)
    embeds, mask, positions = splice_ecg_embeddings(
        batch.interpret_ids, model.embed_tokens(batch.interpret_ids), ecg_embeds, model.ecg_token_id,
        batch.interpret_mask)
    labels_i = expand_ids_for_splice(batch.interpret_labels, batch.interpret_ids, model.ecg_token_id,
                                     ecg_embeds.shape[1], fill_value=IGNORE)
    logits_i = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
    g_mask = batch.generate_mask
    g_pos = (torch.cumsum(g_mask, dim=1) - 1).clamp(min=0)
    out_g = model.llm(inputs_embeds=model.embed_tokens(batch.generate_ids), attention_mask=g_mask,
                      position_ids=g_pos, output_hidden_states=True)
    k = len(model.gen_token_ids)
    cond = model.condition_from_states(out_g.hidden_states[-1][:, -k:])
    picked, targets = [], []
    for logits, labels in ((logits_i, labels_i), (out_g.logits, batch.generate_labels)):
        shifted = labels[:, 1:]
        keep = shifted != IGNORE
        picked.append(logits[:, :-1][keep])
        targets.append(shifted[keep])
    return LlmOutputs(logits=torch.cat(picked), targets=torch.cat(targets), cond=cond, encoder_tokens=encoder_tokens)


def kd_losses(student: LlmOutputs, teacher: LlmOutputs, cfg: KdConfig,
              feature_projection: nn.Module | None = None) -> dict[str, Tensor]:
    """``ce``, ``kl``, ``gen`` (MSE + 1 - cos), ``enc`` (feature MSE), ``kd`` (all distillation terms) and
    ``total``; see the module docstring."""
    vocab = min(student.logits.shape[-1], teacher.logits.shape[-1])
    s_logits, t_logits = student.logits[:, :vocab].float(), teacher.logits[:, :vocab].float()
    ce = F.cross_entropy(s_logits, student.targets)
    T = cfg.temperature
    kl = F.kl_div(F.log_softmax(s_logits / T, dim=-1), F.log_softmax(t_logits / T, dim=-1), log_target=True,
                  reduction="batchmean")
    c_s, c_t = student.cond.float(), teacher.cond.float()
    gen = F.mse_loss(c_s, c_t) + (1.0 - F.cosine_similarity(c_s, c_t, dim=-1)).mean()
    if feature_projection is not None:
        enc = F.mse_loss(feature_projection(student.encoder_tokens.float()), teacher.encoder_tokens.float())
    else:
        enc = torch.zeros((), device=ce.device)
    kd = cfg.alpha * T * T * kl + cfg.gen_weight * gen + cfg.encoder_weight * enc
    return {"total": (1.0 - cfg.alpha) * ce + kd, "kd": kd, "ce": ce, "kl": kl, "gen": gen, "enc": enc}


class KdObjective(nn.Module):
    """The trainable side (student + feature projection) with the loss as ``forward``, so DDP syncs it."""

    def __init__(self, student: UniEcgModel, feature_projection: nn.Module | None, cfg: KdConfig) -> None:
        super().__init__()
        self.student = student
        self.feature_projection = feature_projection
        self.cfg = cfg

    def forward(self, batch: KdBatch, teacher: LlmOutputs) -> dict[str, Tensor]:
        return kd_losses(llm_outputs(self.student, batch), teacher, self.cfg, self.feature_projection)


@torch.no_grad()
def teacher_outputs(teacher: UniEcgModel, batch: KdBatch) -> LlmOutputs:
    return llm_outputs(teacher.eval(), batch)


def batch_indices(num_examples: int, batch_size: int, *, seed: int, step: int, process: int) -> list[int]:
    """The example indices of one step: a pure function of (seed, step, process)."""
    from .accel import seeded_generator

    gen = seeded_generator(seed, 1, 0, step, process)
    return torch.randint(num_examples, (batch_size,), generator=gen).tolist()


@torch.no_grad()
def teacher_conditions(teacher: UniEcgModel, examples: Sequence[DistillExample], batch_size: int = 8,
                       device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """The condition vectors of ``teacher``'s generation head at the [ECG] tokens for ``examples``, with sex, age
    and hr: what the UNet is conditioned on during step distillation. Any UniECG works here: the job passes the
    model whose UNet is distilled (the teacher, or the student for ``"diffusion": "own"``)."""
    parts: dict[str, list[Tensor]] = {"cond": [], "sex": [], "age": [], "hr": []}
    for start in range(0, len(examples), batch_size):
        batch = collate(teacher, examples[start:start + batch_size]).to(device)
        g_mask = batch.generate_mask
        out = teacher.llm(inputs_embeds=teacher.embed_tokens(batch.generate_ids), attention_mask=g_mask,
                          position_ids=(torch.cumsum(g_mask, dim=1) - 1).clamp(min=0), output_hidden_states=True)
        k = len(teacher.gen_token_ids)
        parts["cond"].append(teacher.condition_from_states(out.hidden_states[-1][:, -k:]).cpu())
        for name in ("sex", "age", "hr"):
            parts[name].append(getattr(batch, name).cpu())
    return {name: torch.cat(values) for name, values in parts.items()}


def describe_losses(history: list[dict[str, float]], window: int = 10) -> dict[str, Any]:
    """First and last (each a mean over up to ``window`` steps, at most half the run) of each logged loss."""
    if not history:
        return {}
    window = max(1, min(window, len(history) // 2))
    keys = [k for k in history[0] if k != "step"]
    head, tail = history[:window], history[-window:]
    return {k: {"first": float(np.mean([h[k] for h in head])), "last": float(np.mean([h[k] for h in tail]))}
            for k in keys}
