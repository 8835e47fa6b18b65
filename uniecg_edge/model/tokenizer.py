"""Tokenizers for the UniECG model: the ``<ecg>`` input placeholder and the K ``[ECG_i]`` generation tokens.

``train_tokenizer`` trains the package's own byte-level BPE (``tokenizers`` library, offline, deterministic for
a given corpus); ``add_uniecg_tokens`` adds the same special tokens to an existing Hugging Face tokenizer
(e.g. one loaded from a Llama or Qwen2 checkpoint folder).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger(__name__)

ECG_PLACEHOLDER = "<ecg>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"


def ecg_gen_tokens(k: int) -> list[str]:
    """The K generation tokens ``["[ECG_0]", ..., "[ECG_{k-1}]"]``."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"number of [ECG] generation tokens must be a positive integer, got {k!r}")
    return [f"[ECG_{i}]" for i in range(k)]


def uniecg_special_tokens(k: int) -> list[str]:
    """``<ecg>`` followed by the K ``[ECG_i]`` tokens, in id order."""
    return [ECG_PLACEHOLDER, *ecg_gen_tokens(k)]


@dataclass(frozen=True)
class UniEcgTokenIds:
    """Ids of the package's special tokens in one tokenizer."""

    ecg_placeholder: int
    ecg_gen: tuple[int, ...]

    @property
    def k(self) -> int:
        return len(self.ecg_gen)


def train_tokenizer(corpus: Iterable[str], vocab_size: int, k: int) -> Any:
    """Train a byte-level BPE tokenizer on ``corpus`` and wrap it as a ``PreTrainedTokenizerFast``.

    Ids 0.. are ``<pad>``, ``<s>``, ``</s>``, ``<ecg>``, ``[ECG_0]`` .. ``[ECG_{k-1}]``, then the 256 byte symbols,
    then the merges. Encoding prepends ``<s>`` (``add_special_tokens=False`` turns that off). The same corpus
    gives the same vocabulary and merges on every run (no dropout, no continuing-subword prefix, whose lazy
    hash-map ids are the one source of run-to-run differences in the ``tokenizers`` BPE trainer).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *uniecg_special_tokens(k)]
    minimum = len(specials) + 256
    if not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ConfigError(f"vocab_size must be at least {minimum} (special tokens + 256 bytes), got {vocab_size!r}")

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_checked_texts(corpus), trainer=trainer)
    bos_id = backend.token_to_id(BOS_TOKEN)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        model_max_length=4096,
    )
    add_uniecg_tokens(tokenizer, k)  # already in the vocabulary: registers them as special, no new ids
    logger.info("trained byte-level BPE: %d tokens, k=%d", len(tokenizer), k)
    return tokenizer


def _checked_texts(corpus: Iterable[str]) -> Iterable[str]:
    count = 0
    for text in corpus:
        if not isinstance(text, str):
            raise ConfigError(f"tokenizer corpus item {count} is {type(text).__name__}, not str")
        count += 1
        yield text
    if count == 0:
        raise ConfigError("tokenizer corpus is empty")


def add_uniecg_tokens(tokenizer: Any, k: int) -> UniEcgTokenIds:
    """Add ``<ecg>`` and ``[ECG_0]`` .. ``[ECG_{k-1}]`` as special tokens (never split, skipped when decoding
    with ``skip_special_tokens``) and return their ids. Tokens already present keep their ids.

    Resize the model's embeddings afterwards (``llm.resize_for_tokenizer``).
    """
    wanted = uniecg_special_tokens(k)
    added = tokenizer.add_tokens(wanted, special_tokens=True)
    if added:
        logger.info("added %d UniECG tokens to the tokenizer (now %d)", added, len(tokenizer))
    return uniecg_token_ids(tokenizer, k)


def uniecg_token_ids(tokenizer: Any, k: int) -> UniEcgTokenIds:
    """Look up the ids of ``<ecg>`` and the K ``[ECG_i]`` tokens; ``ConfigError`` if one is missing."""
    ids = []
    unk = getattr(tokenizer, "unk_token_id", None)
    for token in uniecg_special_tokens(k):
        token_id = tokenizer.convert_tokens_to_ids(token)
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if token_id is None or (unk is not None and token_id == unk) or encoded != [token_id]:
            raise ConfigError(f"tokenizer has no single-id special token {token!r} (run add_uniecg_tokens)")
        ids.append(int(token_id))
    return UniEcgTokenIds(ecg_placeholder=ids[0], ecg_gen=tuple(ids[1:]))


def save_tokenizer(tokenizer: Any, directory: str | os.PathLike[str]) -> Path:
    """Write the tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ...) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    return out


def load_tokenizer(directory: str | os.PathLike[str]) -> Any:
    """Load a tokenizer saved with ``save_pretrained`` from a local folder, offline."""
    from transformers import AutoTokenizer

    src = Path(directory)
    if not src.is_dir():
        raise ConfigError(f"{src}: tokenizer folder not found")
    if not any((src / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise ConfigError(f"{src}: no tokenizer files (tokenizer.json or tokenizer_config.json)")
    try:
        return AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{src}: cannot load tokenizer ({first_line})") from None
