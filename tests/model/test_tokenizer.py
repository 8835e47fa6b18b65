"""Tokenizer: deterministic byte-level BPE training, special-token ids, lossless text, adding tokens to
Qwen2 / Llama tokenizer folders, save/load."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from uniecg_edge.errors import ConfigError
from uniecg_edge.model.tokenizer import (
    ECG_PLACEHOLDER,
    add_uniecg_tokens,
    ecg_gen_tokens,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
    uniecg_token_ids,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
K = 4


def make_corpus(n: int = 400, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    rhythms = ["Sinus rhythm", "Sinus tachycardia", "Atrial fibrillation", "Sinus bradycardia"]
    findings = ["normal axis", "left axis deviation", "ST depression in V4-V6", "T wave inversion in III, aVF"]
    return [
        f"{rng.choice(rhythms)} at {rng.randint(40, 160)} bpm; PR {rng.randint(100, 240)} ms, "
        f"QRS {rng.randint(70, 140)} ms, QTc {rng.randint(360, 520)} ms; {rng.choice(findings)}."
        for _ in range(n)
    ]


def fingerprint(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(make_corpus(), vocab_size=420, k=K)


def test_training_is_deterministic_in_process(tokenizer) -> None:
    again = train_tokenizer(make_corpus(), vocab_size=420, k=K)
    assert fingerprint(again) == fingerprint(tokenizer)
    other = train_tokenizer(make_corpus(seed=8), vocab_size=420, k=K)
    assert fingerprint(other) != fingerprint(tokenizer)  # the fingerprint does see the corpus


def test_training_is_deterministic_across_processes(tokenizer) -> None:
    script = (
        "import hashlib, sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.model.test_tokenizer import make_corpus, fingerprint;"
        "from uniecg_edge.model.tokenizer import train_tokenizer;"
        f"print(fingerprint(train_tokenizer(make_corpus(), vocab_size=420, k={K})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO_ROOT)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == fingerprint(tokenizer)


def test_special_tokens_have_fixed_low_ids(tokenizer) -> None:
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    ids = uniecg_token_ids(tokenizer, K)
    assert ids.ecg_placeholder == 3
    assert ids.ecg_gen == (4, 5, 6, 7)
    assert tokenizer.convert_ids_to_tokens(list(ids.ecg_gen)) == ecg_gen_tokens(K)
    assert len(tokenizer) == 420


def test_special_tokens_are_never_split(tokenizer) -> None:
    ids = uniecg_token_ids(tokenizer, K)
    encoded = tokenizer(f"{ECG_PLACEHOLDER}\nGenerate an ECG:[ECG_0][ECG_1][ECG_2][ECG_3]", add_special_tokens=False)
    seq = encoded["input_ids"]
    assert seq[0] == ids.ecg_placeholder
    assert seq[-K:] == list(ids.ecg_gen)
    assert seq.count(ids.ecg_placeholder) == 1


def test_bos_is_prepended_unless_disabled(tokenizer) -> None:
    assert tokenizer("QRS")["input_ids"][0] == tokenizer.bos_token_id
    assert tokenizer.bos_token_id not in tokenizer("QRS", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("text", ["QTc 452 ms, µV-level noise", "ÄÖÜ ß — 心电图 🫀", "  leading spaces\tand tabs\n"])
def test_text_round_trips_losslessly(tokenizer, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_decoding_skips_the_ecg_tokens(tokenizer) -> None:
    ids = tokenizer("Sinus rhythm [ECG_0][ECG_1] <ecg>", add_special_tokens=False)["input_ids"]
    assert "[ECG_" not in tokenizer.decode(ids, skip_special_tokens=True)
    assert "<ecg>" not in tokenizer.decode(ids, skip_special_tokens=True)


def test_save_and_load_round_trip(tokenizer, tmp_path) -> None:
    folder = save_tokenizer(tokenizer, tmp_path / "tok")
    loaded = load_tokenizer(folder)
    text = "<ecg> Atrial fibrillation at 130 bpm [ECG_2]"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert uniecg_token_ids(loaded, K) == uniecg_token_ids(tokenizer, K)
    assert loaded.pad_token_id == 0 and loaded.eos_token_id == 2


def _plain_bpe(pre_tokenizer, specials: list[str]) -> tuple[dict, list]:
    from tokenizers import Tokenizer, models, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizer
    alphabet = []
    if type(pre_tokenizer).__name__ == "ByteLevel":
        alphabet = pre_tokenizer.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    backend.train_from_iterator(make_corpus(200), trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    return model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]


def _qwen2_folder(tmp_path: Path) -> Path:
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab, merges = _plain_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"])
    folder = tmp_path / "qwen2"
    Qwen2Tokenizer(vocab=vocab, merges=merges).save_pretrained(str(folder))
    return folder


def _llama_folder(tmp_path: Path) -> Path:
    from tokenizers import pre_tokenizers
    from transformers import LlamaTokenizer

    vocab, merges = _plain_bpe(pre_tokenizers.Metaspace(), ["<unk>", "<s>", "</s>"])
    folder = tmp_path / "llama"
    LlamaTokenizer(vocab=vocab, merges=merges).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("make_folder", [_qwen2_folder, _llama_folder], ids=["qwen2", "llama"])
def test_add_uniecg_tokens_to_a_checkpoint_tokenizer(make_folder, tmp_path) -> None:
    base = load_tokenizer(make_folder(tmp_path))
    before = len(base)
    sample = "Sinus rhythm at 72 bpm."
    sample_ids = base(sample, add_special_tokens=False)["input_ids"]
    with pytest.raises(ConfigError, match="<ecg>"):
        uniecg_token_ids(base, K)

    ids = add_uniecg_tokens(base, K)
    assert len(base) == before + 1 + K
    assert ids.ecg_placeholder == before and ids.ecg_gen == tuple(range(before + 1, before + 1 + K))
    assert base(sample, add_special_tokens=False)["input_ids"] == sample_ids  # existing text unchanged
    assert add_uniecg_tokens(base, K) == ids and len(base) == before + 1 + K  # idempotent

    reloaded = load_tokenizer(save_tokenizer(base, tmp_path / "with_ecg"))
    assert uniecg_token_ids(reloaded, K) == ids
    seq = reloaded(f"look: {ECG_PLACEHOLDER} then [ECG_3]", add_special_tokens=False)["input_ids"]
    assert ids.ecg_placeholder in seq and seq[-1] == ids.ecg_gen[3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"corpus": ["a b c"], "vocab_size": 100, "k": 2}, "vocab_size"),
        ({"corpus": [], "vocab_size": 400, "k": 2}, "empty"),
        ({"corpus": ["ok", 3], "vocab_size": 400, "k": 2}, "not str"),
        ({"corpus": ["ok"], "vocab_size": 400, "k": 0}, "positive"),
    ],
)
def test_bad_training_arguments_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train_tokenizer(**kwargs)


def test_loading_a_missing_folder_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no tokenizer files"):
        load_tokenizer(tmp_path / "empty")
