"""The hindsight pass of the whole-record R-peak detector: the most plausible beat sequence among all candidates.

A stream must decide each candidate from the past alone; a whole record can weigh every candidate against the
rhythm on both sides. This pass takes the envelope's local maxima at a finer spacing than the stream does (a beat
hidden beside a larger artefact gets its own candidate) and picks, by dynamic programming, the sequence that
maximises

    sum over chosen beats of  evidence = log(amplitude / (FLOOR * typical beat amplitude))
                                         + a bonus if the stream took it + a morphology term
  - rhythm weight * sum over consecutive beats of cost(RR / expected RR)

RR under the refractory period is impossible, between envelope peaks and between the R peaks they place (a
wide artefact can put two envelope peaks far enough apart whose R peaks fall within one QRS), and a candidate
within ``twave_ms`` of a beat with under half its slope cannot follow it (a T wave). The cost grows faster
for long intervals (a missed beat) than for short ones (ectopic beats are common) and steeply under 0.6 of the
expected RR (a T wave or noise). The morphology term is the candidate's correlation with the record's own beat
classes (``qrs_morphology``); a candidate the stream rejected can only come back if it looks like one of them.
The rhythm weight falls where the rhythm is irregular (atrial fibrillation).

The expected RR is the local median of the stream's RR intervals, except in windows where many of the stream's
beats look like no QRS class and the envelope repeats with a clear period twice that RR (T waves taken as beats).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .qrs import local_maxima, make_candidate
from .qrs_morphology import template_likeness

if TYPE_CHECKING:
    from .qrs import Candidate, QrsDetectorConfig, StreamingRPeakDetector

__all__ = ["refine_beats"]

FLOOR = 0.35  # a candidate at this fraction of the typical beat amplitude is neutral evidence
STREAM_BONUS = 0.3  # evidence added when the causal pass accepted the candidate
RHYTHM_WEIGHT = 1.0
LONG_WEIGHT = 1.5  # per unit of log(RR / expected) above 0: a missed beat (2x RR) costs about 1
SHORT_WEIGHT = 0.7  # per unit of log(expected / RR): a premature beat is common and costs little
PREMATURE_LIMIT = 0.6  # below this fraction of the expected RR an interval grows expensive quickly
TOO_SHORT_WEIGHT = 3.0
IRREGULARITY_REF = 0.1  # median |successive change of log RR| at which the rhythm's weight halves
ARTIFACT_RATIO = 4.0  # beyond this many typical amplitudes the excess counts against a candidate
CANDIDATE_SPACING_MS = 60.0
MORPHOLOGY_WEIGHT = 1.0
MORPHOLOGY_NEUTRAL = 0.5  # a correlation with the beat template that is neither for nor against a candidate
MORPHOLOGY_PENALTY_CAP = 0.5
QRS_LIKENESS = 0.7  # likeness to a beat class above which a candidate looks like a QRS
UNLIKE_FRACTION = 0.3  # share of a window's stream beats unlike any QRS class that lets the envelope's period count
ENVELOPE_CLIP = 3.0  # envelope values are clipped here (in typical-QRS units) for the autocorrelation
PERIOD_WINDOW_S = 10.0
LOOKBACK = 64  # predecessors considered per candidate


def refine_beats(detector: StreamingRPeakDetector, config: QrsDetectorConfig) -> np.ndarray:
    """R peaks of the most plausible beat sequence (see the module docstring) over what ``detector`` saw; it
    must have run with ``keep_history`` to the end of its stream."""
    fs = detector.fs
    beats = detector.beats
    if len(beats) < 3 or not detector.history:
        return np.asarray([b.r_peak for b in beats], dtype=np.int64)
    hist = detector.history
    env = np.concatenate([h.envelope for h in hist])
    slope = np.concatenate([h.slope for h in hist])
    per_lead = np.concatenate([h.per_lead for h in hist], axis=1)
    loc = np.concatenate([h.loc for h in hist], axis=1)
    ms = fs / 1000.0
    spacing = max(1, int(round(CANDIDATE_SPACING_MS * ms)))
    before = int(round(config.locate_before_ms * ms))
    after = int(round(config.locate_after_ms * ms))
    cands: list[Candidate] = [make_candidate(int(k), 0, env, slope, per_lead, loc, detector.features.win,
                                             before, after) for k in local_maxima(env, spacing)]
    if len(cands) < 3:
        return np.asarray([b.r_peak for b in beats], dtype=np.int64)
    index = np.array([c.index for c in cands], dtype=np.int64)
    amp = np.array([c.amplitude for c in cands])
    cand_slope = np.array([c.slope for c in cands])
    beat_index = np.array([b.index for b in beats], dtype=np.int64)
    r_peaks = np.array([c.r_peak for c in cands], dtype=np.int64)
    twave = config.twave_ms * ms
    # beat classes from the stream's beats that do not sit in the T wave of the beat before them
    gaps = np.diff(beat_index, prepend=beat_index[0] - int(twave) - 1)
    template_peaks = np.array([b.r_peak for b, g in zip(beats, gaps, strict=True) if g >= twave], dtype=np.int64)
    if template_peaks.size < 3:
        template_peaks = np.array([b.r_peak for b in beats], dtype=np.int64)
    likeness = template_likeness(loc, template_peaks, r_peaks, fs)
    stream_chosen = np.isin(index, beat_index)
    expected, weight = _expected_rr(beat_index, index, env, fs, likeness[stream_chosen] >= QRS_LIKENESS)
    typical = max(_typical_amplitude(env, float(np.median(expected))), 1e-9)  # a flat record has none
    safe = np.maximum(amp, 1e-9)
    evidence = np.log(safe / (FLOOR * typical)) - 2.0 * np.maximum(0.0, np.log(safe / (ARTIFACT_RATIO * typical)))
    evidence += STREAM_BONUS * stream_chosen
    evidence += MORPHOLOGY_WEIGHT * np.maximum(likeness - MORPHOLOGY_NEUTRAL, -MORPHOLOGY_PENALTY_CAP)
    # a beat the stream rejected comes back only if it looks like one of the record's QRS classes
    evidence[~stream_chosen & (likeness < QRS_LIKENESS)] = -np.inf
    path = _best_path(index, r_peaks, evidence, cand_slope, expected, weight, config.refractory_ms * ms, twave,
                      config.twave_slope_ratio, env.shape[0])
    return r_peaks[path]


def _typical_amplitude(env: np.ndarray, rr: float) -> float:
    """The median over consecutive windows one RR long of the envelope's maximum: a typical beat's height,
    unmoved by a minority of large ectopic beats or artefacts and by second humps (T waves) taken as beats."""
    n = max(1, int(rr))
    count = env.shape[0] // n
    if count < 2:
        return float(env.max()) if env.size else 1.0
    return float(np.median(env[: count * n].reshape(count, n).max(axis=1)))


def _expected_rr(beat_index: np.ndarray, at: np.ndarray, env: np.ndarray, fs: float, beat_qrs_like: np.ndarray,
                 half: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Expected RR (samples) and the rhythm's weight at each index in ``at``.

    The expected RR is the local median of the stream's RR intervals. In a window where many of the stream's
    beats look like no QRS class of the record and the envelope repeats with a clear period about twice that RR,
    the stream took second humps (T waves) for beats: the period is expected instead. The weight falls as the
    local rhythm grows irregular (atrial fibrillation), where an unexpected RR is no evidence of an error.
    """
    rr = np.diff(beat_index).astype(float)
    mid = (beat_index[1:] + beat_index[:-1]) / 2.0
    local = np.array([np.median(rr[max(0, k - half): k + half + 1]) for k in range(rr.size)])
    expected = np.interp(at, mid, local)
    jumps = np.abs(np.diff(np.log(rr))) if rr.size > 1 else np.zeros(1)
    irregular = np.array([np.median(jumps[max(0, k - half): k + half]) for k in range(max(1, jumps.size))])
    jump_mid = beat_index[1:-1] if rr.size > 1 else beat_index[:1]
    weight = RHYTHM_WEIGHT / (1.0 + (np.interp(at, jump_mid, irregular) / IRREGULARITY_REF) ** 2)
    window = int(PERIOD_WINDOW_S * fs)
    clipped = np.minimum(env / max(_typical_amplitude(env, float(np.median(rr))), 1e-9), ENVELOPE_CLIP)
    for start in range(0, max(1, env.shape[0] - window // 2), window):
        stop = min(env.shape[0], start + window)
        in_window = (beat_index >= start) & (beat_index < stop)
        inside = (at >= start) & (at < stop)
        in_rr = (mid >= start) & (mid < stop)
        if stop - start < int(3 * fs) or not inside.any() or not in_rr.any():
            continue
        if np.mean(~beat_qrs_like[in_window]) < UNLIKE_FRACTION:
            continue
        period = _period(clipped[start:stop], fs, float(np.median(rr[in_rr])))
        if period is not None:
            expected[inside] = period
            weight[inside] = RHYTHM_WEIGHT
    return expected, weight


def _period(env: np.ndarray, fs: float, stream_rr: float) -> float | None:
    """The envelope's period (samples) when it is clear and the stream's RR is about half of it, else None."""
    x = env - env.mean()
    n = x.shape[0]
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if ac[0] <= 0:
        return None
    ac = ac / ac[0]
    lo, hi = int(0.25 * fs), min(int(2.0 * fs), n // 2)
    if hi <= lo + 2:
        return None
    seg = ac[lo:hi]
    interior = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])) + 1
    if interior.size == 0:
        return None
    best = int(interior[np.argmax(seg[interior])])
    period = float(lo + best)
    if seg[best] < 0.3 or not (0.35 * period <= stream_rr <= 0.7 * period):
        return None
    return period


def _rr_cost(ratio: np.ndarray) -> np.ndarray:
    """Cost of an RR interval at ``ratio`` times the expected one: linear in log ratio, steeper for long
    intervals (a missed beat) than for short ones (an ectopic beat), and steep again under PREMATURE_LIMIT
    (a T wave or noise taken as a beat)."""
    x = np.log(ratio)
    cost = np.where(x > 0, LONG_WEIGHT * x, -SHORT_WEIGHT * x)
    return cost + TOO_SHORT_WEIGHT * np.maximum(0.0, np.log(PREMATURE_LIMIT) - x)


def _best_path(index: np.ndarray, r_peaks: np.ndarray, evidence: np.ndarray, slope: np.ndarray,
               expected: np.ndarray, weight: np.ndarray, refractory: float, twave: float, twave_ratio: float,
               n_total: int) -> list[int]:
    m = index.size
    score = np.full(m, -np.inf)
    back = np.full(m, -1, dtype=np.int64)
    for j in range(m):
        # a path may start here; a first beat later than one expected RR after the start means one was missed
        best = evidence[j] - weight[j] * LONG_WEIGHT * max(0.0, np.log(max(index[j], 1) / expected[j]))
        arg = -1
        lo = max(0, j - LOOKBACK)
        if j > lo:
            prev = np.arange(lo, j)
            rr = (index[j] - index[prev]).astype(float)
            cost = weight[j] * _rr_cost(rr / expected[j])
            cost[rr < refractory] = np.inf
            # two R peaks closer than the refractory period cannot both be beats, wherever their envelopes peak
            cost[np.abs(r_peaks[j] - r_peaks[prev]) < refractory] = np.inf
            cost[(rr < twave) & (slope[j] < twave_ratio * slope[prev])] = np.inf
            total = score[prev] - cost + evidence[j]
            k = int(np.argmax(total))
            if total[k] > best:
                best, arg = float(total[k]), int(prev[k])
        score[j], back[j] = best, arg
    end_cost = weight * LONG_WEIGHT * np.maximum(0.0, np.log(np.maximum(n_total - index, 1) / expected))
    j = int(np.argmax(score - end_cost))
    path = []
    while j >= 0:
        path.append(j)
        j = int(back[j])
    return path[::-1]
