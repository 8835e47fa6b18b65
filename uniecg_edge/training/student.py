"""The student of a distillation run: its JSON config and how it is built from the teacher.

A student is a same-family UniECG: it **shares the teacher's tokenizer** (so logits line up token for token) and
its diffusion decoder (the UNet starts as a copy of the teacher's and is step-distilled afterwards; the VAE decoder
is copied as it is). What shrinks is the LLM, and optionally the ECG encoder.

Student config JSON (see ``configs/student_tiny.json`` and ``configs/student_tinyllama_1b.json``)::

    {
      "name": "uniecg-student",
      "llm": {"model_type": "llama", "hidden_size": 2048, ...}      # a full transformers config dict, or
             {"from_teacher": true, "num_hidden_layers": 8, ...},  # the teacher's config with overrides, or
             {"pretrained": "/models/Llama-3.2-1B"},               # a same-family LLM folder (safetensors)
      "init_from_teacher": true,   # copy every teacher tensor whose name (layers spread evenly) and shape match
      "ecg_encoder": "teacher",    # or {"width": 256, "layers": 4, "heads": 4}: a smaller encoder
      "projector": {"hidden_dim": null, "mid_dim": null},   # unset: the teacher's where the widths match,
      "gen_head": {"mlp_dim": null}                         #   else mlp2x / an MLP as wide as the student LLM
    }

``vocab_size`` and the bos / eos / pad ids are always the teacher's (same tokenizer). ECG encoder choice:
``"teacher"`` reuses the teacher's encoder **frozen** (always possible: the projector, which is the student's own,
maps the encoder width into the student LLM width); a dict builds a smaller encoder over the same patches, distilled
with feature MSE through a learned Linear (student width -> teacher width; TinyBERT's W_h), used in training only.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..model.ecg_encoder import EcgEncoder, EcgEncoderConfig
from ..model.gen_head import GenerationHead, GenHeadConfig
from ..model.llm import build_llm, hidden_size, load_llm
from ..model.projector import EcgProjector, ProjectorConfig
from ..model.uniecg import UniEcgModel

logger = logging.getLogger(__name__)

INHERITED_META_KEYS = ("transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype")
LAYER_INDEX = re.compile(r"^((?:.*\.)?(?:layers|blocks|h)\.)(\d+)(\..*)$")


@dataclass(frozen=True)
class StudentConfig:
    """What the student looks like; the JSON file's keys are these fields."""

    llm: dict[str, Any]
    name: str = "uniecg-student"
    init_from_teacher: bool = True
    ecg_encoder: str | dict[str, Any] = "teacher"
    projector: dict[str, Any] = field(default_factory=dict)
    gen_head: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.llm, dict) or not self.llm:
            raise ConfigError("student config: 'llm' must be a non-empty object")
        if "pretrained" in self.llm:
            if set(self.llm) != {"pretrained"} or not isinstance(self.llm["pretrained"], str):
                raise ConfigError("student config: 'llm' with 'pretrained' takes a folder path and nothing else")
        elif "model_type" not in self.llm and not self.llm.get("from_teacher"):
            raise ConfigError("student config: 'llm' needs 'model_type', \"from_teacher\": true or 'pretrained'")
        if not (self.ecg_encoder == "teacher" or isinstance(self.ecg_encoder, dict)):
            raise ConfigError("student config: 'ecg_encoder' must be \"teacher\" or an object of encoder sizes")
        for name, allowed in (("projector", {"hidden_dim", "mid_dim"}), ("gen_head", {"mlp_dim"})):
            value = getattr(self, name)
            if not isinstance(value, dict) or set(value) - allowed:
                raise ConfigError(f"student config: '{name}' may only hold {', '.join(sorted(allowed))}")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("student config: 'name' must be a non-empty string")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Any, source: str = "student config") -> StudentConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "llm" not in data:
            raise ConfigError(f"{source}: missing 'llm'")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {str(exc).removeprefix('student config: ')}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StudentConfig:
        src = Path(path)
        if not src.is_file():
            raise ConfigError(f"{src}: student config not found")
        try:
            data = json.loads(src.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{src}: invalid JSON ({exc})".splitlines()[0]) from None
        return cls.from_dict(data, source=str(src))


# ---- building ---------------------------------------------------------------------------------------------
def student_llm_config(teacher_llm: Any, cfg: StudentConfig) -> dict[str, Any]:
    """The student LLM's config dict: inherited or given, with the teacher's vocabulary and special ids."""
    teacher_cfg = teacher_llm.config
    overrides = {k: v for k, v in cfg.llm.items() if k != "from_teacher"}
    if cfg.llm.get("from_teacher"):
        base = {k: v for k, v in teacher_cfg.to_diff_dict().items() if k not in INHERITED_META_KEYS}
        base["model_type"] = teacher_cfg.model_type
        if "head_dim" not in overrides and ({"hidden_size", "num_attention_heads"} & set(overrides)):
            base.pop("head_dim", None)  # derived from the width: recompute for the new shape
        config = {**base, **overrides}
    else:
        config = dict(overrides)
    vocab = teacher_llm.get_output_embeddings().weight.shape[0]
    if config.get("vocab_size", vocab) != vocab:
        logger.warning("student vocab_size %s replaced by the teacher's %d (shared tokenizer)",
                       config["vocab_size"], vocab)
    config["vocab_size"] = int(vocab)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(teacher_cfg, key, None)
        if value is not None:
            config[key] = value
    return config


def pretrained_student_llm(directory: str, teacher_llm: Any) -> Any:
    """A pretrained same-family LLM (local safetensors folder) with its vocabulary grown to the teacher's: the
    added rows (``<ecg>``, ``[ECG_i]``) start at the mean embedding, as ``resize_for_tokenizer`` does."""
    llm = load_llm(directory)
    vocab = int(teacher_llm.get_output_embeddings().weight.shape[0])
    old = int(llm.get_input_embeddings().weight.shape[0])
    if old > vocab:
        raise ConfigError(f"{directory}: vocabulary {old} is larger than the teacher's {vocab} (not the same family)")
    if old < vocab:
        llm.resize_token_embeddings(vocab, mean_resizing=False)
        with torch.no_grad():
            tables = [llm.get_input_embeddings().weight]
            head = llm.get_output_embeddings()
            if head is not None and head.weight.data_ptr() != tables[0].data_ptr():
                tables.append(head.weight)
            for table in tables:
                table[old:] = table[:old].mean(dim=0, keepdim=True)
    return llm


def _teacher_layer(index: int, n_student: int, n_teacher: int) -> int:
    if n_student <= 1:
        return 0
    return round(index * (n_teacher - 1) / (n_student - 1))


def _layer_count(names: list[str]) -> int:
    found = {int(m.group(2)) for n in names if (m := LAYER_INDEX.match(n))}
    return max(found) + 1 if found else 0


@torch.no_grad()
def copy_matching(student: nn.Module, teacher: nn.Module) -> int:
    """Copy teacher tensors into the student where names and shapes match; student layer i takes teacher layer
    ``round(i (Lt-1)/(Ls-1))`` (first and last kept, the rest spread evenly). Returns the tensors copied."""
    t_state = teacher.state_dict()
    s_state = student.state_dict()
    n_s, n_t = _layer_count(list(s_state)), _layer_count(list(t_state))
    copied = 0
    for name, tensor in s_state.items():
        source = name
        match = LAYER_INDEX.match(name)
        if match and n_t:
            source = f"{match.group(1)}{_teacher_layer(int(match.group(2)), n_s, n_t)}{match.group(3)}"
        other = t_state.get(source)
        if other is not None and other.shape == tensor.shape:
            tensor.copy_(other)
            copied += 1
    return copied


def _encoder(teacher: UniEcgModel, cfg: StudentConfig) -> tuple[EcgEncoder, nn.Linear | None]:
    if cfg.ecg_encoder == "teacher":
        encoder = copy.deepcopy(teacher.ecg_encoder)
        encoder.requires_grad_(False)
        return encoder, None
    t_cfg = teacher.ecg_encoder.config
    sizes = dict(cfg.ecg_encoder)  # type: ignore[arg-type]
    fixed = {"n_leads": t_cfg.n_leads, "seq_length": t_cfg.seq_length, "patch_size": t_cfg.patch_size}
    clash = {k for k in fixed if k in sizes and sizes[k] != fixed[k]}
    if clash:
        raise ConfigError(f"student ecg_encoder must keep the teacher's {', '.join(sorted(clash))} "
                          "(feature distillation matches token for token)")
    try:
        enc_cfg = EcgEncoderConfig(**{**dataclasses.asdict(t_cfg), **sizes, **fixed})
    except TypeError as exc:
        raise ConfigError(f"student ecg_encoder: {exc}") from None
    encoder = EcgEncoder(enc_cfg)
    projection = nn.Linear(enc_cfg.width, t_cfg.width)
    return encoder, projection


def build_student(teacher: UniEcgModel, cfg: StudentConfig, seed: int = 0) -> tuple[UniEcgModel, nn.Linear | None]:
    """A student for ``teacher`` and, when it has its own ECG encoder, the feature projection to train with it.

    Initialisation is seeded (``seed``); with ``init_from_teacher`` matching tensors then come from the teacher.
    The UNet and VAE decoder are frozen copies of the teacher's (the UNet is step-distilled separately).
    """
    torch.manual_seed(seed)
    if "pretrained" in cfg.llm:
        llm = pretrained_student_llm(cfg.llm["pretrained"], teacher.llm)
    else:
        llm = build_llm(student_llm_config(teacher.llm, cfg))
    width = hidden_size(llm)
    encoder, projection = _encoder(teacher, cfg)
    # unset sizes follow the teacher where the widths around them are the teacher's, else the student LLM width
    t_proj, t_head = teacher.projector.config, teacher.gen_head.config
    same_in = encoder.config.width == t_proj.in_dim and width == t_proj.out_dim
    proj_cfg = ProjectorConfig(
        in_dim=encoder.config.width, out_dim=width,
        hidden_dim=cfg.projector.get("hidden_dim") or (t_proj.hidden_dim if same_in else width),
        mid_dim=cfg.projector["mid_dim"] if "mid_dim" in cfg.projector else (t_proj.mid_dim if same_in else None))
    projector = EcgProjector(proj_cfg)
    head_cfg = GenHeadConfig(num_tokens=t_head.num_tokens, hidden_dim=width, cond_dim=t_head.cond_dim,
                             mlp_dim=cfg.gen_head.get("mlp_dim") or (t_head.mlp_dim if width == t_head.hidden_dim
                                                                     else width),
                             l2_normalize=t_head.l2_normalize)
    gen_head = GenerationHead(head_cfg)
    if cfg.init_from_teacher:
        copied = copy_matching(llm, teacher.llm)
        if cfg.ecg_encoder != "teacher":
            copied += copy_matching(encoder, teacher.ecg_encoder)
        if proj_cfg == teacher.projector.config:
            copied += copy_matching(projector, teacher.projector)
        if head_cfg == t_head:
            copied += copy_matching(gen_head, teacher.gen_head)
        logger.info("initialised %d student tensors from the teacher", copied)
    unet = copy.deepcopy(teacher.unet).requires_grad_(False)
    vae = copy.deepcopy(teacher.vae_decoder).requires_grad_(False)
    description = cfg.description or f"Distilled from {teacher.config.name}."
    config = dataclasses.replace(teacher.config, name=cfg.name, description=description)
    student = UniEcgModel(config, ecg_encoder=encoder, projector=projector, llm=llm, tokenizer=teacher.tokenizer,
                          gen_head=gen_head, unet=unet, vae_decoder=vae, scheduler=teacher.scheduler)
    llm.train()
    return student, projection


LLM_SIDE = ("ecg_encoder", "projector", "llm", "gen_head")


def parameter_summary(teacher: UniEcgModel, student: UniEcgModel) -> dict[str, Any]:
    """Per-component parameter counts, totals, and teacher/student ratios (LLM side and whole model)."""
    t, s = teacher.parameter_counts(), student.parameter_counts()
    t_side, s_side = sum(t[k] for k in LLM_SIDE), sum(s[k] for k in LLM_SIDE)
    return {
        "teacher": t, "student": s,
        "teacher_total": sum(t.values()), "student_total": sum(s.values()),
        "teacher_llm_side": t_side, "student_llm_side": s_side,
        "ratio_total": sum(t.values()) / max(1, sum(s.values())),
        "ratio_llm_side": t_side / max(1, s_side),
        "ratio_llm": t["llm"] / max(1, s["llm"]),
    }
