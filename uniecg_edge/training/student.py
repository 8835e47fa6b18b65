"""The student of a distillation run: its JSON config and how it is built (from the teacher, or from a folder).

A student is a same-family UniECG: it **shares the teacher's tokenizer** (logits line up token for token) and its
generation head maps onto the teacher's condition space. Two ways to make one:

* **from the teacher** (``llm`` given): a smaller LLM (optionally a smaller ECG encoder), matching tensors copied
  from the teacher; the diffusion decoder is the teacher's (UNet step-distilled afterwards, VAE decoder copied);
* **from a pretrained small UniECG** (``init_from``: a checkpoint folder, e.g. the ``student`` recipe's
  ``model/``): every component comes from that folder, whose tokenizer, prompt format, [ECG] tokens and condition
  width must be the teacher's (refused in one line otherwise). KD fine-tunes projector, LLM and generation head.

Student config JSON (see ``configs/*.json``)::

    {
      "name": "uniecg-student",
      "llm": {"model_type": "llama", "hidden_size": 2048, ...}      # a full transformers config dict, or
             {"from_teacher": true, "num_hidden_layers": 8, ...},  # the teacher's config with overrides, or
             {"pretrained": "/models/Llama-3.2-1B"},               # a same-family LLM folder (safetensors)
      "init_from_teacher": true,   # copy every teacher tensor whose name (layers spread evenly) and shape match
      "ecg_encoder": "teacher",    # or {"width": 256, "layers": 4, "heads": 4}: a smaller encoder
      "projector": {"hidden_dim": null, "mid_dim": null},   # unset: the teacher's where the widths match,
      "gen_head": {"mlp_dim": null},                        #   else mlp2x / an MLP as wide as the student LLM
      "diffusion": "teacher",
      "distill": {"preset": "edge", "diffusion_steps": 8}   # default run settings; the CLI's options win
    }
    {"name": "...", "init_from": "model", "diffusion": "own", "ecg_encoder": "frozen", "distill": {...}}

``init_from``: a relative path resolves against **the JSON file's folder** (a config travels with the checkpoint
it names); ``uniecg-edge distill --student-init DIR`` overrides it (resolved against the working directory).

``diffusion`` (:data:`DIFFUSION_SOURCES`): ``"teacher"`` ships copies of the teacher's UNet, VAE decoder and noise
schedule and step-distils the UNet from the teacher's many-step sampler; ``"own"`` (needs ``init_from``) keeps the
folder's UNet and VAE decoder and step-distils the UNet from its own many-step sampler. Conditions come from the
generation head trained with that UNet: the teacher's for ``"teacher"``; for ``"own"`` the student's after KD,
which is what the shipped model feeds its UNet.

``vocab_size`` and the bos / eos / pad ids are always the teacher's. ECG encoder, built from the teacher:
``"teacher"`` reuses the teacher's encoder **frozen** (the student's own projector maps its width into the student
LLM width); a dict builds a smaller encoder over the same patches, distilled with feature MSE through a learned
Linear (student width -> teacher width; TinyBERT's W_h), used in training only. From a folder: ``"frozen"``
(default) or ``"trainable"``. Frozen because the recipe trained it with the auxiliary truth probe (rate,
intervals, axis, labels: the evidence the reports cite), and a few hundred KD steps reach it only through the
LLM's token distributions, a weak, noisy signal for such features; the trainable projector can still re-map them.
Freezing saves no time (timed: the teacher's forward and the LLM dominate a step), so longer runs may train it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable
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
from ..model.schedulers import SchedulerConfig, load_scheduler_config
from ..model.tokenizer import load_tokenizer
from ..model.uniecg import CONFIG_NAME, UniEcgConfig, UniEcgModel
from ..registry import Registry
from .presets import STUDENT_MAX_BYTES

logger = logging.getLogger(__name__)

INHERITED_META_KEYS = ("transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype")
LAYER_INDEX = re.compile(r"^((?:.*\.)?(?:layers|blocks|h)\.)(\d+)(\..*)$")


@dataclass(frozen=True)
class DiffusionSource:
    """Whose diffusion decoder a student ships: ``owner(teacher, student)`` is the model whose UNet (the stage-0
    teacher of step distillation), VAE decoder, noise schedule and generation head (the conditions) are used."""

    owner: Callable[[UniEcgModel, UniEcgModel], UniEcgModel]
    schedule: Callable[[UniEcgModel, StudentConfig], SchedulerConfig]  # the owner's, read before the student loads
    needs_init_from: bool
    description: str


DIFFUSION_SOURCES: Registry[DiffusionSource] = Registry("student diffusion source")
DIFFUSION_SOURCES.add("teacher", DiffusionSource(
    owner=lambda teacher, student: teacher, schedule=lambda teacher, cfg: teacher.scheduler,
    needs_init_from=False, description="the teacher's UNet"))
DIFFUSION_SOURCES.add("own", DiffusionSource(
    owner=lambda teacher, student: student,
    schedule=lambda teacher, cfg: load_scheduler_config(Path(str(cfg.init_from)) / "diffusion"),
    needs_init_from=True, description="the student's own UNet (from init_from)"))
INIT_ENCODER_MODES = ("frozen", "trainable")
FROM_TEACHER_ONLY = ("llm", "init_from_teacher", "projector", "gen_head")


@dataclass(frozen=True)
class StudentConfig:
    """What the student looks like; the JSON file's keys are these fields."""

    llm: dict[str, Any] = field(default_factory=dict)
    name: str = "uniecg-student"
    init_from: str | None = None
    diffusion: str = "teacher"
    init_from_teacher: bool = True
    ecg_encoder: str | dict[str, Any] | None = None  # None: "frozen" with init_from, else "teacher"
    projector: dict[str, Any] = field(default_factory=dict)
    gen_head: dict[str, Any] = field(default_factory=dict)
    distill: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if self.ecg_encoder is None:
            object.__setattr__(self, "ecg_encoder", "frozen" if self.init_from is not None else "teacher")
        source = DIFFUSION_SOURCES.get(self.diffusion) if isinstance(self.diffusion, str) else None
        if source is None:
            raise ConfigError("student config: 'diffusion' must be a string")
        if self.init_from is not None:
            self._check_init_from()
        elif source.needs_init_from:
            raise ConfigError(f"student config: \"diffusion\": \"{self.diffusion}\" needs 'init_from' "
                              "(a pretrained student folder with its own UNet)")
        else:
            self._check_from_teacher()
        if not isinstance(self.distill, dict):
            raise ConfigError("student config: 'distill' must be an object of run settings")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("student config: 'name' must be a non-empty string")

    def _check_init_from(self) -> None:
        if not isinstance(self.init_from, str) or not self.init_from:
            raise ConfigError("student config: 'init_from' must be a folder path")
        if self.llm or self.projector or self.gen_head:
            raise ConfigError("student config: with 'init_from' every component comes from that folder "
                              "(drop 'llm', 'projector' and 'gen_head')")
        if self.ecg_encoder not in INIT_ENCODER_MODES:
            raise ConfigError(f"student config: with 'init_from', 'ecg_encoder' is the folder's: "
                              f"{' or '.join(repr(m) for m in INIT_ENCODER_MODES)}")

    def _check_from_teacher(self) -> None:
        if not isinstance(self.llm, dict) or not self.llm:
            raise ConfigError("student config: 'llm' must be a non-empty object (or give 'init_from')")
        if "pretrained" in self.llm:
            if set(self.llm) != {"pretrained"} or not isinstance(self.llm["pretrained"], str):
                raise ConfigError("student config: 'llm' with 'pretrained' takes a folder path and nothing else")
        elif "model_type" not in self.llm and not self.llm.get("from_teacher"):
            raise ConfigError("student config: 'llm' needs 'model_type', \"from_teacher\": true or 'pretrained'")
        if not (self.ecg_encoder == "teacher" or isinstance(self.ecg_encoder, dict)):
            raise ConfigError("student config: 'ecg_encoder' must be \"teacher\" or an object of encoder sizes "
                              "('frozen' / 'trainable' need 'init_from')")
        for name, allowed in (("projector", {"hidden_dim", "mid_dim"}), ("gen_head", {"mlp_dim"})):
            value = getattr(self, name)
            if not isinstance(value, dict) or set(value) - allowed:
                raise ConfigError(f"student config: '{name}' may only hold {', '.join(sorted(allowed))}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def with_init_from(self, folder: str | os.PathLike[str]) -> StudentConfig:
        """This config starting from ``folder`` instead (``--student-init``; resolved against the working dir)."""
        if self.init_from is None:
            raise ConfigError("--student-init needs a student config with 'init_from' (this one builds its student "
                              "from the teacher)")
        return dataclasses.replace(self, init_from=str(Path(folder).expanduser().resolve()))

    @classmethod
    def from_dict(cls, data: Any, source: str = "student config", base: Path | None = None) -> StudentConfig:
        """``base``: the folder a relative ``init_from`` resolves against (the JSON file's; unset: kept as given)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "init_from" in data:
            clash = [k for k in FROM_TEACHER_ONLY if k in data]
            if clash:
                raise ConfigError(f"{source}: with 'init_from' every component comes from that folder "
                                  f"(drop {', '.join(repr(k) for k in clash)})")
            if base is not None and isinstance(data["init_from"], str) and data["init_from"]:
                data = {**data, "init_from": str((base / Path(data["init_from"]).expanduser()).resolve())}
        elif "llm" not in data:
            raise ConfigError(f"{source}: missing 'llm' (or 'init_from': a pretrained student folder)")
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
        return cls.from_dict(data, source=str(src), base=src.resolve().parent)


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


# ---- from a pretrained student folder ------------------------------------------------------------------
def _merges(tokenizer: Any) -> Any:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return None if backend is None else json.loads(backend.to_str()).get("model", {}).get("merges")


def tokenizer_difference(teacher_tokenizer: Any, other: Any) -> str | None:
    """How ``other`` differs from the teacher's tokenizer (size, special ids, vocabulary, merges), or None."""
    if len(other) != len(teacher_tokenizer):
        return f"{len(other)} tokens, the teacher's has {len(teacher_tokenizer)}"
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        mine, theirs = getattr(other, key, None), getattr(teacher_tokenizer, key, None)
        if mine != theirs:
            return f"{key} {mine}, the teacher's {theirs}"
    vocab, teacher_vocab = other.get_vocab(), teacher_tokenizer.get_vocab()
    if vocab != teacher_vocab:
        return f"{sum(1 for tok, i in vocab.items() if teacher_vocab.get(tok) != i)} tokens with other ids"
    if _merges(other) != _merges(teacher_tokenizer):
        return "other BPE merges"
    return None


def check_init_from(teacher: UniEcgModel, folder: str | os.PathLike[str]) -> None:
    """Refuse, in one line, a pretrained student folder that cannot learn from ``teacher``: not a checkpoint,
    another tokenizer, prompt format or number of [ECG] tokens, or a generation head of another width.
    Reads configs and the tokenizer only (cheap: done before any weights load)."""
    src = Path(folder)
    if not src.is_dir():
        raise ConfigError(f"{src}: student init_from folder not found (set 'init_from' in the student config "
                          "or pass --student-init DIR)")
    try:
        config = UniEcgConfig.from_dict(json.loads((src / CONFIG_NAME).read_text()))
        head = json.loads((src / "gen_head" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{src}: init_from is not a UniECG checkpoint ({type(exc).__name__})") from None
    problem = tokenizer_difference(teacher.tokenizer, load_tokenizer(src / "tokenizer"))
    if problem is not None:
        raise ConfigError(f"{src}: tokenizer differs from the teacher's ({problem}); "
                          "a student must share the teacher's tokenizer")
    if config.num_ecg_tokens != teacher.config.num_ecg_tokens or config.prompt != teacher.config.prompt:
        raise ConfigError(f"{src}: prompt format or number of [ECG] tokens differs from the teacher's")
    if head.get("cond_dim") != teacher.gen_head.config.cond_dim:
        raise ConfigError(f"{src}: generation head maps onto {head.get('cond_dim')} dimensions, the teacher's "
                          f"onto {teacher.gen_head.config.cond_dim} (not the same condition space)")


def student_from_folder(teacher: UniEcgModel, cfg: StudentConfig) -> UniEcgModel:
    """The student of ``cfg.init_from``: every component from the folder, the UNet, VAE decoder and schedule
    from the ``cfg.diffusion`` owner; projector, LLM and generation head trainable, the encoder as configured."""
    folder = Path(str(cfg.init_from))
    check_init_from(teacher, folder)
    loaded = UniEcgModel.from_pretrained(folder)
    owner = DIFFUSION_SOURCES.get(cfg.diffusion).owner(teacher, loaded)
    description = cfg.description or f"Distilled from {teacher.config.name}, initialised from {loaded.config.name}."
    student = UniEcgModel(
        dataclasses.replace(loaded.config, name=cfg.name, description=description),
        ecg_encoder=loaded.ecg_encoder, projector=loaded.projector, llm=loaded.llm, tokenizer=loaded.tokenizer,
        gen_head=loaded.gen_head, unet=copy.deepcopy(owner.unet), vae_decoder=copy.deepcopy(owner.vae_decoder),
        scheduler=owner.scheduler)
    student.requires_grad_(True)
    student.ecg_encoder.requires_grad_(cfg.ecg_encoder == "trainable")
    student.unet.requires_grad_(False)
    student.vae_decoder.requires_grad_(False)
    student.llm.train()
    logger.info("student initialised from %s (diffusion: %s)", folder, cfg.diffusion)
    return student


def build_student(teacher: UniEcgModel, cfg: StudentConfig, seed: int = 0) -> tuple[UniEcgModel, nn.Linear | None]:
    """A student for ``teacher`` and, when it has its own ECG encoder, the feature projection to train with it.

    With ``init_from`` the student is that folder's (:func:`student_from_folder`). Otherwise initialisation is
    seeded (``seed``); with ``init_from_teacher`` matching tensors then come from the teacher, and the UNet and
    VAE decoder are frozen copies of the teacher's (the UNet is step-distilled separately).
    """
    if cfg.init_from is not None:
        return student_from_folder(teacher, cfg), None
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


EDGE_MIN_RATIO = 4.0  # the shipped student: >= 4x fewer parameters than the teacher, <= STUDENT_MAX_BYTES fp32


def parameter_summary(teacher: UniEcgModel, student: UniEcgModel) -> dict[str, Any]:
    """Per-component parameter counts, totals over every shipped component (ECG encoder, projector, LLM,
    generation head, UNet, VAE decoder), teacher/student ratios (whole model, LLM side, LLM) and the edge
    targets (ratio >= 4, fp32 weights <= 25 MB)."""
    t, s = teacher.parameter_counts(), student.parameter_counts()
    t_side, s_side = sum(t[k] for k in LLM_SIDE), sum(s[k] for k in LLM_SIDE)
    t_total, s_total = sum(t.values()), sum(s.values())
    return {
        "components": list(s), "teacher": t, "student": s,
        "teacher_total": t_total, "student_total": s_total,
        "student_fp32_bytes": 4 * s_total, "student_fp32_mb": round(4 * s_total / 1e6, 2),
        "edge_targets": {"min_ratio_total": EDGE_MIN_RATIO, "max_fp32_bytes": STUDENT_MAX_BYTES,
                         "ratio_total_met": t_total >= EDGE_MIN_RATIO * s_total,
                         "fp32_bytes_met": 4 * s_total <= STUDENT_MAX_BYTES},
        "teacher_llm_side": t_side, "student_llm_side": s_side,
        "ratio_total": t_total / max(1, s_total),
        "ratio_llm_side": t_side / max(1, s_side),
        "ratio_llm": t["llm"] / max(1, s["llm"]),
    }
