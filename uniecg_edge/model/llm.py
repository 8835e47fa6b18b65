"""The decoder-only language model: any ``transformers`` causal LM (Llama, Qwen2, ...), built from a config dict
or loaded from a local safetensors checkpoint folder, offline.

Config dicts are plain JSON-ready ``dict``s holding ``model_type`` plus that architecture's config fields, so
they are saved beside what they produce as they are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger(__name__)


def build_llm(config: dict[str, Any], attn_implementation: str | None = None) -> Any:
    """A freshly initialised causal LM from ``config`` (``model_type`` + fields, e.g. ``tiny_llama()``).

    Initialisation draws from torch's global RNG, so ``torch.manual_seed(s)`` before the call makes it
    reproducible. Weights are float32. ``attn_implementation`` ("eager", "sdpa") overrides the default.
    """
    import torch
    from transformers import AutoModelForCausalLM

    hf_config = llm_config(config)
    kwargs: dict[str, Any] = {}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_config(hf_config, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"cannot build a causal LM for model_type {hf_config.model_type!r}: {exc}") from None
    model = model.to(torch.float32)
    model.eval()
    logger.info("built %s with %d parameters", type(model).__name__, sum(p.numel() for p in model.parameters()))
    return model


def llm_config(config: dict[str, Any]) -> Any:
    """The ``transformers`` config object for a config dict; ``ConfigError`` for an unknown ``model_type``."""
    from transformers import AutoConfig

    if not isinstance(config, dict) or "model_type" not in config:
        raise ConfigError("LLM config must be a dict with a 'model_type' key (e.g. 'llama', 'qwen2')")
    fields = dict(config)
    model_type = fields.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **fields)
    except ValueError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise ConfigError(f"LLM config: unknown model_type {model_type!r} ({first_line})") from None


def load_llm(directory: str | os.PathLike[str], attn_implementation: str | None = None) -> Any:
    """Load a causal LM from a local checkpoint folder (``config.json`` + ``*.safetensors``), float32, offline.

    Pickle weights (``pytorch_model.bin``) are refused: convert them to safetensors first.
    """
    import torch
    from transformers import AutoModelForCausalLM

    src = Path(directory)
    if not (src / "config.json").is_file():
        raise ConfigError(f"{src}: not a model checkpoint folder (config.json missing)")
    if not any(src.glob("*.safetensors")):
        raise ConfigError(f"{src}: no *.safetensors weights (pickle checkpoints are not loaded)")
    kwargs: dict[str, Any] = {"use_safetensors": True, "local_files_only": True, "dtype": torch.float32}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(str(src), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{src}: cannot load the language model ({first_line})") from None
    model.eval()
    return model


def resize_for_tokenizer(model: Any, tokenizer: Any) -> int:
    """Resize the input (and untied output) embeddings to ``len(tokenizer)``; return the number of new rows.

    New rows are set to the mean of the existing rows (as LLaVA does for added tokens): deterministic, and a
    neutral start for the ``<ecg>`` / ``[ECG_i]`` tokens. A table already at least as large is left alone.
    """
    import torch

    old = model.get_input_embeddings().weight.shape[0]
    new = len(tokenizer)
    if new <= old:
        if new < old:
            logger.info("tokenizer has %d tokens, model vocabulary %d: table kept as it is", new, old)
        return 0
    model.resize_token_embeddings(new, mean_resizing=False)
    with torch.no_grad():
        tables = [model.get_input_embeddings().weight]
        output = model.get_output_embeddings()
        if output is not None and output.weight.data_ptr() != tables[0].data_ptr():
            tables.append(output.weight)
        for table in tables:
            table[old:] = table[:old].mean(dim=0, keepdim=True)
        bias = getattr(output, "bias", None) if output is not None else None
        if bias is not None:
            bias[old:] = 0.0
    logger.info("resized token embeddings %d -> %d", old, new)
    return new - old


def hidden_size(model: Any) -> int:
    """The LLM's hidden width (the width of ``inputs_embeds`` and of its hidden states)."""
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text_config.hidden_size)


def tiny_llama(vocab_size: int = 512) -> dict[str, Any]:
    """A 2-layer Llama (hidden 64, 4 heads, 2 KV heads) for tests and the default model."""
    return {
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 172,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }


def tiny_qwen2(vocab_size: int = 512) -> dict[str, Any]:
    """A 2-layer Qwen2 (hidden 64, 4 heads, 2 KV heads, q/k/v bias, tied embeddings)."""
    return {
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }


def qwen2_0_5b() -> dict[str, Any]:
    """Qwen2-0.5B's shape (494 M parameters; 24 layers, hidden 896, 14 heads, 2 KV heads, vocab 151,936)."""
    return {
        "model_type": "qwen2",
        "vocab_size": 151936,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
    }


def vicuna_7b() -> dict[str, Any]:
    """GEM's LLM shape (Vicuna-7B / LLaMA-2-7B, model-facts §2.1): 6.74 B parameters. Never built in tests."""
    return {
        "model_type": "llama",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
