"""Scoring R-peak detections against reference beats: greedy matching within a tolerance, Se and PPV."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BeatScore", "match_peaks"]


@dataclass(frozen=True)
class BeatScore:
    tp: int
    fn: int
    fp: int

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def __add__(self, other: BeatScore) -> BeatScore:
        return BeatScore(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp)

    def to_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fn": self.fn, "fp": self.fp, "se": round(self.sensitivity, 4),
                "ppv": round(self.ppv, 4)}


def match_peaks(reference: np.ndarray, detected: np.ndarray, tolerance: float) -> BeatScore:
    """Greedy one-to-one matching: each reference beat, in order, takes the nearest unused detection within
    ``tolerance`` samples (inclusive)."""
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    det = np.sort(np.asarray(detected, dtype=np.int64))
    used = np.zeros(det.size, dtype=bool)
    tp = 0
    for r in ref:
        lo = int(np.searchsorted(det, r - tolerance, side="left"))
        hi = int(np.searchsorted(det, r + tolerance, side="right"))
        best, best_d = -1, np.inf
        for k in range(lo, hi):
            if not used[k] and abs(det[k] - r) < best_d:
                best, best_d = k, abs(det[k] - r)
        if best >= 0:
            used[best] = True
            tp += 1
    return BeatScore(tp, int(ref.size - tp), int(det.size - tp))
