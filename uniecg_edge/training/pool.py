"""The fixed example pool of stage 2: ECGs in generator space (12 x 1024 at 102.4 Hz), patient scalars, the
generation requests of every style and their sentence embeddings.

Built once per run and cached in the work folder (``<name>_signals.npy``, ``<name>.json``, the embeddings under
``embeddings/``), so a resumed run reads it back instead of simulating and embedding again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..model.beat_clock import phase_from_peaks
from ..preprocess import to_generator_space
from .dataset import ExampleSampler
from .reports import REQUEST_STYLES, generation_requests
from .text_embed import embed_cached

log = logging.getLogger(__name__)

SEX_CODES = {"M": 1.0, "F": 0.0}  # DiffuSETS: M = 1, F = 0


@dataclass
class Pool:
    """Examples ``0 .. n-1`` of one stream, in the shapes stage 2 consumes."""

    signals: np.ndarray  # (n, 12, 1024) float32, mV at 102.4 Hz
    hr: np.ndarray  # (n,) bpm
    age: np.ndarray  # (n,) years
    sex: np.ndarray  # (n,) 1 = M, 0 = F
    requests: list[list[str]]  # (n, n_styles): the text of every request style
    embeddings: np.ndarray  # (n, n_styles, 384) unit-norm sentence embeddings of ``requests``
    labels: list[list[str]]
    r_peaks_s: list[list[float]]  # the true R peaks of each window, seconds from its start

    def beat_phase(self, window_s: float) -> np.ndarray:
        """(n, 1024) beat phase of every example on the generator grid (see :mod:`uniecg_edge.model.beat_clock`)."""
        return np.stack([phase_from_peaks(np.asarray(peaks), window_s) for peaks in self.r_peaks_s])

    @property
    def size(self) -> int:
        return int(self.signals.shape[0])

    @property
    def styles(self) -> tuple[str, ...]:
        return tuple(REQUEST_STYLES)


def build_pool(sampler: ExampleSampler, stream: str, size: int, work_dir: Path, embedder: Any | None = None,
               name: str = "pool") -> Pool:
    """Simulate (or read back) ``size`` examples of ``stream`` and embed their requests."""
    work_dir.mkdir(parents=True, exist_ok=True)
    meta_path, signal_path = work_dir / f"{name}.json", work_dir / f"{name}_signals.npy"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() and signal_path.is_file() else None
    if meta is not None and "r_peaks_s" not in meta:
        log.info("%s: cached pool predates the stored beat times; simulating it again", meta_path)
        meta = None
    if meta is not None:
        signals = np.load(signal_path, allow_pickle=False)
    else:
        meta, signals = _simulate(sampler, stream, size, name)
        tmp = signal_path.with_suffix(".tmp.npy")
        np.save(tmp, signals, allow_pickle=False)
        tmp.replace(signal_path)
        meta_path.write_text(json.dumps(meta) + "\n")
    flat = [text for row in meta["requests"] for text in row]
    embeddings = embed_cached(flat, work_dir / "embeddings", embedder).reshape(size, len(meta["requests"][0]), -1)
    return Pool(signals=signals, hr=np.asarray(meta["hr"], dtype=np.float32),
                age=np.asarray(meta["age"], dtype=np.float32),
                sex=np.asarray([SEX_CODES[s] for s in meta["sex"]], dtype=np.float32),
                requests=meta["requests"], embeddings=embeddings.astype(np.float32), labels=meta["labels"],
                r_peaks_s=meta["r_peaks_s"])


def _simulate(sampler: ExampleSampler, stream: str, size: int, name: str) -> tuple[dict[str, Any], np.ndarray]:
    from .loop import progress

    signals = np.zeros((size, 12, 1024), dtype=np.float32)
    meta: dict[str, Any] = {"stream": stream, "size": size, "hr": [], "age": [], "sex": [], "requests": [],
                            "labels": [], "r_peaks_s": []}
    with progress(size, f"{name} examples", unit="ecg") as bar:
        for i in range(size):
            ex = sampler.example(stream, i)
            signals[i] = to_generator_space(ex.ecg)
            requests = generation_requests(ex.truth, ex.report)
            meta["hr"].append(ex.hr)
            meta["age"].append(ex.age)
            meta["sex"].append(ex.sex)
            meta["requests"].append([requests[style] for style in REQUEST_STYLES])
            meta["labels"].append(ex.labels)
            meta["r_peaks_s"].append(list(ex.r_peaks_s))
            bar.update(1)
    return meta, signals
