"""``UniEcgModel``: the composed reference model and its checkpoint folder.

Checkpoint layout (one folder per component, each with ``config.json`` + ``model.safetensors``)::

    config.json              UniEcgConfig: K, prompt, signal format, name, licence, whether it was trained
    ecg_encoder/  projector/  gen_head/
    llm/                     a transformers causal LM (save_pretrained)
    tokenizer/               tokenizer files with <ecg> and [ECG_0]..[ECG_K-1]
    diffusion/unet/  diffusion/vae/  diffusion/scheduler.json
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..leads import STANDARD_LEADS
from .ecg_encoder import EcgEncoder
from .gen_head import GenerationHead
from .llm import load_llm
from .projector import EcgProjector
from .schedulers import SchedulerConfig, load_scheduler_config, save_scheduler_config
from .tokenizer import ECG_PLACEHOLDER, ecg_gen_tokens, load_tokenizer
from .unet import ConditionalUNet1d
from .vae import VaeDecoder

if TYPE_CHECKING:
    from transformers import PreTrainedModel

CONFIG_NAME = "config.json"
GEM_SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass(frozen=True)
class PromptConfig:
    """LLaVA v1 conversation format (GEM's), with ``<ecg>`` where the ECG embeddings are spliced."""

    system: str = GEM_SYSTEM_PROMPT
    interpret_template: str = "{system} USER: {ecg}\n{question} ASSISTANT:"
    interpret_question: str = "Interpret this 12-lead ECG, citing the evidence for each finding."
    generate_template: str = "{system} USER: Generate a 12-lead ECG: {request} ASSISTANT:"

    def interpret_prompt(self, question: str | None = None) -> str:
        return self.interpret_template.format(
            system=self.system, ecg=ECG_PLACEHOLDER, question=question or self.interpret_question
        )

    def generate_prompt(self, request: str) -> str:
        return self.generate_template.format(system=self.system, request=request)


@dataclass(frozen=True)
class UniEcgConfig:
    """What the runtime needs beside the components' own configs."""

    name: str = "uniecg"
    num_ecg_tokens: int = 4
    max_new_tokens: int = 256
    fs: float = 500.0
    num_samples: int = 5000
    leads: tuple[str, ...] = STANDARD_LEADS
    trained: bool = True
    grounded: bool = False  # trained to read the DSP's evidence line in the interpret prompt (grounding.py)
    licence: str = "unknown"
    description: str = ""
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UniEcgConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"UniEcgConfig: unknown keys {', '.join(unknown)}")
        prompt = PromptConfig(**data.pop("prompt", {}))
        if "leads" in data:
            data["leads"] = tuple(data["leads"])
        return cls(prompt=prompt, **data)


class UniEcgModel(nn.Module):
    """ECG encoder → projector → causal LM (ECG embeddings spliced at ``<ecg>``) and, for generation,
    [ECG]-token hidden states → generation head → UNet (condition terms once) → VAE decoder."""

    def __init__(
        self,
        config: UniEcgConfig,
        *,
        ecg_encoder: EcgEncoder,
        projector: EcgProjector,
        llm: PreTrainedModel,
        tokenizer: Any,
        gen_head: GenerationHead,
        unet: ConditionalUNet1d,
        vae_decoder: VaeDecoder,
        scheduler: SchedulerConfig,
    ) -> None:
        super().__init__()
        self.config = config
        self.ecg_encoder = ecg_encoder
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.gen_head = gen_head
        self.unet = unet
        self.vae_decoder = vae_decoder
        self.scheduler = scheduler
        self.ecg_token_id = self._token_id(ECG_PLACEHOLDER)
        self.gen_token_ids = [self._token_id(t) for t in ecg_gen_tokens(config.num_ecg_tokens)]
        if tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has no end-of-sequence token")
        self.eos_token_id = int(tokenizer.eos_token_id)

    def _token_id(self, token: str) -> int:
        ids = self.tokenizer.convert_tokens_to_ids([token])
        if not ids or ids[0] is None or ids[0] == self.tokenizer.unk_token_id:
            raise ConfigError(f"the tokenizer lacks the special token {token}")
        return int(ids[0])

    # ---- understanding -------------------------------------------------------------------------------------
    def encode_ecg(self, ecg: torch.Tensor) -> torch.Tensor:
        """(B, 12, 5000) raw mV → (B, N, H) ECG embeddings in the LLM's width."""
        return self.projector(self.ecg_encoder(ecg))

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(input_ids)

    # ---- generation ----------------------------------------------------------------------------------------
    def condition_from_states(self, ecg_token_states: torch.Tensor) -> torch.Tensor:
        """(B, K, H) last-layer hidden states at the [ECG] tokens → (B, 1, D) condition vector."""
        return self.gen_head(ecg_token_states)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 4, 128) → (B, 12, 1024) mV at 102.4 Hz."""
        return self.vae_decoder(latents)

    # ---- persistence ---------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        self.ecg_encoder.save_pretrained(out / "ecg_encoder")
        self.projector.save_pretrained(out / "projector")
        self.gen_head.save_pretrained(out / "gen_head")
        self.llm.save_pretrained(out / "llm", safe_serialization=True)
        self.tokenizer.save_pretrained(out / "tokenizer")
        self.unet.save_pretrained(out / "diffusion" / "unet")
        self.vae_decoder.save_pretrained(out / "diffusion" / "vae")
        save_scheduler_config(self.scheduler, out / "diffusion" / "scheduler.json")
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> UniEcgModel:
        src = Path(directory)
        if not src.is_dir():
            raise ConfigError(f"{src}: no such model folder")
        config_path = src / CONFIG_NAME
        if not config_path.is_file():
            raise ConfigError(f"{src}: not a UniECG checkpoint (config.json missing)")
        for part in ("ecg_encoder", "projector", "gen_head", "llm", "tokenizer", "diffusion/unet", "diffusion/vae"):
            if not (src / part).is_dir():
                raise ConfigError(f"{src}: not a UniECG checkpoint ({part}/ missing)")
        try:
            config = UniEcgConfig.from_dict(json.loads(config_path.read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{config_path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        model = cls(
            config,
            ecg_encoder=EcgEncoder.from_pretrained(src / "ecg_encoder"),
            projector=EcgProjector.from_pretrained(src / "projector"),
            llm=load_llm(src / "llm"),
            tokenizer=load_tokenizer(src / "tokenizer"),
            gen_head=GenerationHead.from_pretrained(src / "gen_head"),
            unet=ConditionalUNet1d.from_pretrained(src / "diffusion" / "unet"),
            vae_decoder=VaeDecoder.from_pretrained(src / "diffusion" / "vae"),
            scheduler=load_scheduler_config(src / "diffusion" / "scheduler.json"),
        )
        return model.eval()

    def parameter_counts(self) -> dict[str, int]:
        parts: dict[str, nn.Module] = {
            "ecg_encoder": self.ecg_encoder, "projector": self.projector, "llm": self.llm,
            "gen_head": self.gen_head, "unet": self.unet, "vae_decoder": self.vae_decoder,
        }
        return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}


def checkpoint_sha256(directory: str | os.PathLike[str]) -> str:
    """One sha256 over every file of a checkpoint folder (relative path and content, in sorted order)."""
    root = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
