"""QRS morphology for the hindsight pass: how much each candidate looks like a beat class of the record.

Beat classes are the record's own templates: the median QRS of the detected beats (the dominant class) and up to
``MAX_EXTRA_CLASSES`` more, each the median of at least ``MIN_CLASS_SIZE`` beats that resemble one another but
not the dominant beat (ectopic beats repeat their shape; artefacts rarely do). A candidate's likeness is its best
correlation with any class, over all leads at once and small shifts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["template_likeness"]

HALF_MS = 60.0  # QRS window: +-60 ms around the R peak
SHIFT_MS = 16.0  # shifts searched, in 2 ms steps
CLASS_CORRELATION = 0.8  # beats at least this alike belong to one class
MIN_CLASS_SIZE = 3
MAX_EXTRA_CLASSES = 2
MAX_CLUSTERED = 400  # beats clustered at most (evenly spread over a long record)


def template_likeness(loc: np.ndarray, beat_peaks: np.ndarray, cand_peaks: np.ndarray, fs: float) -> np.ndarray:
    """Best correlation of each candidate (R peak positions ``cand_peaks``) with the record's beat classes,
    built from the beats at ``beat_peaks``, on the (leads, samples) localisation signal ``loc``, over shifts up
    to ``SHIFT_MS``."""
    half = max(2, int(round(HALF_MS * fs / 1000.0)))
    offsets = np.arange(-half, half + 1)
    clean = np.nan_to_num(loc, nan=0.0)
    n = clean.shape[1]
    beats = clean[:, np.clip(beat_peaks[:, None] + offsets[None, :], 0, n - 1)]
    lead_scale = np.median(np.ptp(beats, axis=2), axis=1)
    lead_scale = np.where(lead_scale > 0, lead_scale, 1.0)

    def vectors(peaks: np.ndarray) -> np.ndarray:
        """(count, leads * width): each lead's mean removed and scaled, then each vector unit-normed."""
        seg = clean[:, np.clip(peaks[:, None] + offsets[None, :], 0, n - 1)]
        seg = (seg - seg.mean(axis=2, keepdims=True)) / lead_scale[:, None, None]
        flat = np.transpose(seg, (1, 0, 2)).reshape(peaks.size, -1)
        return _unit(flat)

    sample = beat_peaks
    if sample.size > MAX_CLUSTERED:
        sample = sample[np.linspace(0, sample.size - 1, MAX_CLUSTERED).round().astype(int)]
    templates = _classes(vectors(sample))
    if templates.size == 0:
        return np.zeros(cand_peaks.size)
    best = np.full(cand_peaks.size, -1.0)
    step = max(1, int(round(2.0 * fs / 1000.0)))
    shift_max = int(round(SHIFT_MS * fs / 1000.0))
    for shift in range(-shift_max, shift_max + 1, step):
        best = np.maximum(best, (vectors(cand_peaks + shift) @ templates.T).max(axis=1))  # best class
    return best


def _classes(vecs: np.ndarray) -> np.ndarray:
    """Unit templates (classes, dim): the dominant median, then repeated shapes unlike it."""
    if vecs.shape[0] == 0:
        return np.zeros((0, vecs.shape[1]))
    dominant = _unit(np.median(vecs, axis=0)[None, :])
    templates = [dominant[0]]
    rest = vecs[(vecs @ dominant[0]) < CLASS_CORRELATION]
    for _ in range(MAX_EXTRA_CLASSES):
        if rest.shape[0] < MIN_CLASS_SIZE:
            break
        alike = (rest @ rest.T) >= CLASS_CORRELATION
        counts = alike.sum(axis=1)
        k = int(np.argmax(counts))
        if counts[k] < MIN_CLASS_SIZE:
            break
        templates.append(_unit(np.median(rest[alike[k]], axis=0)[None, :])[0])
        rest = rest[~alike[k]]
    return np.stack(templates)


def _unit(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)
