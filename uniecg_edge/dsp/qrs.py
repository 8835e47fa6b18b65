"""R-peak detection: one causal detector for streams, the same detector plus a hindsight pass for whole records.

Stages (numpy and scipy only):

1. ``QrsFeatureExtractor``: despiking median, 5-25 Hz band-pass, rectified slope, 100 ms moving average, per-lead
   normalisation and a quality-weighted mean over leads (see ``qrs_feature``).
2. Candidates: local maxima of that envelope, at least ``candidate_spacing_ms`` from a larger one.
3. Decisions, in time order (Pan-Tompkins style, with robust levels): a candidate is a beat when it exceeds
   ``NPK + threshold_fraction * (SPK - NPK)``, where SPK is the median of the last 8 beat amplitudes and NPK a
   running level of rejected candidates; within the refractory period the larger one wins; within ``twave_ms``
   of a beat a candidate whose slope is under half the beat's is a T wave; when no beat came for
   ``searchback_factor`` RR intervals the largest rejected candidate over half the threshold is taken back.
4. Each beat is placed on the largest deflection of the 0.5-45 Hz localisation signal 30-140 ms before the
   envelope peak (where the band-pass and the moving average put the QRS).

The stream's output does not depend on how the input is chunked (up to rounding ties of one sample); beats come
out about 0.3 s after their R peak, and the first ones after the 8-s warm-up of the lead scales.

``detect_r_peaks`` runs the streaming detector over the whole record, then ``qrs_refine.refine_beats``, which uses
what a stream cannot: both sides of every candidate, the record's own beat shapes and rhythm (see there). It also
leaves out R peaks within ``edge_ms`` of the record's ends, whose QRS the record cuts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .qrs_feature import FeatureChunk, QrsFeatureConfig, QrsFeatureExtractor

__all__ = ["QrsDetectorConfig", "Candidate", "StreamingRPeakDetector", "detect_r_peaks", "as_leads"]

@dataclass(frozen=True)
class QrsDetectorConfig:
    """Physiological constants of the detector (times in ms)."""

    feature: QrsFeatureConfig = field(default_factory=QrsFeatureConfig)
    candidate_spacing_ms: float = 120.0
    refractory_ms: float = 200.0
    twave_ms: float = 360.0
    twave_slope_ratio: float = 0.5
    threshold_fraction: float = 0.3
    searchback_factor: float = 1.66
    searchback_fraction: float = 0.5
    initial_rr_ms: float = 1000.0
    memory: int = 8
    # where the QRS sits relative to an envelope peak: the band-pass delay plus the moving average
    locate_before_ms: float = 140.0
    locate_after_ms: float = -30.0
    edge_ms: float = 50.0
    # whole records are refined in segments this long (overlapping by segment_overlap_s on each side)
    segment_s: float = 600.0
    segment_overlap_s: float = 20.0


@dataclass
class Candidate:
    """A local maximum of the envelope: its index, amplitude, slope, and the R peak it would place."""

    index: int
    amplitude: float
    slope: float
    r_peak: int
    lead: int


class _FeatureBuffer:
    """The last few seconds of feature samples, addressed by absolute sample index."""

    def __init__(self, n_leads: int, keep: int) -> None:
        self.keep = keep
        self.start = 0
        self.env = np.zeros(0)
        self.slope = np.zeros(0)
        self.per_lead = np.zeros((n_leads, 0))
        self.loc = np.zeros((n_leads, 0))

    @property
    def end(self) -> int:
        return self.start + self.env.shape[0]

    def append(self, chunk: FeatureChunk, keep_from: int) -> None:
        self.env = np.concatenate([self.env, chunk.envelope])
        self.slope = np.concatenate([self.slope, chunk.slope])
        self.per_lead = np.concatenate([self.per_lead, chunk.per_lead], axis=1)
        self.loc = np.concatenate([self.loc, chunk.loc], axis=1)
        drop = max(0, min(keep_from, self.end - self.keep) - self.start)
        if drop:
            self.env, self.slope = self.env[drop:], self.slope[drop:]
            self.per_lead, self.loc = self.per_lead[:, drop:], self.loc[:, drop:]
            self.start += drop


class StreamingRPeakDetector:
    """Causal R-peak detector over (leads, samples) chunks of one stream at ``fs``.

    ``process(chunk)`` returns the R peaks (absolute sample indices, ascending) that became final with this chunk;
    they lag the input by about the refractory period plus the candidate spacing, and by the warm-up at the
    start. ``flush()`` ends the stream and returns the rest. Every beat ever returned is also in ``.peaks``.
    """

    def __init__(self, fs: float, n_leads: int = 1, config: QrsDetectorConfig = QrsDetectorConfig(),
                 keep_history: bool = False) -> None:
        self.fs = float(fs)
        self.keep_history = keep_history
        self.n_leads = int(n_leads)
        self.config = config
        self.features = QrsFeatureExtractor(self.fs, self.n_leads, config.feature)
        ms = self.fs / 1000.0
        self._spacing = max(1, int(round(config.candidate_spacing_ms * ms)))
        self._refractory = int(round(config.refractory_ms * ms))
        self._twave = int(round(config.twave_ms * ms))
        self._before = int(round(config.locate_before_ms * ms))
        self._after = int(round(config.locate_after_ms * ms))
        self._buffer = _FeatureBuffer(self.n_leads, keep=int(3 * self.fs) + 2 * self._spacing + self._before)
        self._scan_from = 0  # next absolute index that may still become a candidate
        self._beat_amps: deque[float] = deque([1.0], maxlen=config.memory)
        self._rr: deque[int] = deque(maxlen=config.memory)
        self._noise_level = 0.1
        self._beats: list[Candidate] = []  # accepted, the last one still open to replacement
        self._rejected: list[Candidate] = []  # since the last beat, for the search-back
        self._emitted = 0
        # with ``keep_history`` (whole records): every peak, candidate and feature chunk, for the hindsight pass
        self.peaks: list[int] = []
        self.candidates: list[Candidate] = []
        self.history: list[FeatureChunk] = []

    # -- public ------------------------------------------------------------------------------------------------
    def process(self, chunk: np.ndarray) -> np.ndarray:
        feature = self.features.process(as_leads(chunk, self.n_leads))
        return self._consume(feature, final=False)

    def flush(self) -> np.ndarray:
        """End of stream: decide the remaining candidates and return the last beats."""
        feature = self.features.flush()
        return self._consume(feature, final=True)

    @property
    def beats(self) -> list[Candidate]:
        """The accepted beats as candidates (all of them with ``keep_history``, else the recent ones)."""
        return list(self._beats)

    @property
    def rr_ms(self) -> float | None:
        """Median of the recent RR intervals, or None before two beats."""
        return float(np.median(self._rr)) * 1000.0 / self.fs if self._rr else None

    # -- internals ---------------------------------------------------------------------------------------------
    def _consume(self, feature: FeatureChunk, final: bool) -> np.ndarray:
        self._buffer.append(feature, keep_from=self._scan_from - self._spacing - self._before)
        if self.keep_history and feature.size:
            self.history.append(feature)
        for cand in self._find_candidates(final):
            if self.keep_history:
                self.candidates.append(cand)
            self._decide(cand)
        if final:
            self._search_back(self._buffer.end)
            ready = len(self._beats)
        elif self._beats and self._scan_from > self._beats[-1].index + self._refractory:
            ready = len(self._beats)  # no candidate can replace the last beat any more
        else:
            ready = len(self._beats) - 1  # the last beat may still be replaced
        out = [b.r_peak for b in self._beats[self._emitted:ready]]
        self._emitted = max(self._emitted, ready)
        if self.keep_history:
            self.peaks.extend(out)
        elif self._emitted > 2 * self.config.memory:  # a stream keeps only recent beats
            drop = self._emitted - self.config.memory
            del self._beats[:drop]
            self._emitted -= drop
        return np.asarray(out, dtype=np.int64)

    def _find_candidates(self, final: bool) -> list[Candidate]:
        buf = self._buffer
        w = self._spacing
        last = buf.end - (0 if final else w)  # a candidate needs ``w`` samples after it
        first = max(self._scan_from, buf.start)
        if last <= first:
            return []
        lo = max(buf.start, first - w)
        peaks = local_maxima(buf.env[lo - buf.start: last + w - buf.start], w) + lo
        self._scan_from = last
        return [self._candidate(int(k)) for k in peaks if first <= k < last]

    def _candidate(self, index: int) -> Candidate:
        buf = self._buffer
        return make_candidate(index, buf.start, buf.env, buf.slope, buf.per_lead, buf.loc,
                              self.features.win, self._before, self._after)

    def _threshold(self) -> float:
        spk = float(np.median(self._beat_amps))
        return self._noise_level + self.config.threshold_fraction * (spk - self._noise_level)

    def _decide(self, cand: Candidate) -> None:
        self._search_back(cand.index)
        if self._beats:
            last = self._beats[-1]
            since = cand.index - last.index
            if since < self._refractory:
                if cand.amplitude > last.amplitude and len(self._beats) > self._emitted:
                    self._beats.pop()
                    self._beat_amps.pop()
                    if self._rr and self._beats:
                        self._rr.pop()
                    self._rejected.append(last)
                    self._accept(cand)
                else:
                    self._reject(cand)
                return
            if since < self._twave and self._like_t_wave(cand, last):
                self._reject(cand)
                return
        if cand.amplitude >= self._threshold():
            self._accept(cand)
        else:
            self._reject(cand)

    def _like_t_wave(self, cand: Candidate, beat: Candidate) -> bool:
        """Whether ``cand``, within the T-wave window after ``beat``, looks like its T wave rather than a QRS."""
        return cand.slope < self.config.twave_slope_ratio * beat.slope

    def _accept(self, cand: Candidate, searched_back: bool = False) -> None:
        if self._beats:
            self._rr.append(cand.index - self._beats[-1].index)
        self._beats.append(cand)
        self._beat_amps.append(cand.amplitude)
        self._rejected = [c for c in self._rejected if c.index > cand.index]

    def _reject(self, cand: Candidate) -> None:
        self._noise_level += 0.125 * (cand.amplitude - self._noise_level)
        self._rejected.append(cand)
        if len(self._rejected) > 4 * self.config.memory * 8:  # a long stretch without beats: keep the recent ones
            del self._rejected[: len(self._rejected) // 2]

    def _search_back(self, now: int) -> None:
        """Take back missed beats while the gap since the last beat is too long for the recent rhythm."""
        while True:
            rr = float(np.median(self._rr)) if self._rr else self.config.initial_rr_ms * self.fs / 1000.0
            last_index = self._beats[-1].index if self._beats else -self._refractory
            if now - last_index <= self.config.searchback_factor * rr:
                return
            floor = self.config.searchback_fraction * self._threshold()
            pool = [c for c in self._rejected
                    if c.index - last_index >= self._refractory and now - c.index >= self._refractory
                    and c.amplitude >= floor]
            if self._beats:
                pool = [c for c in pool if c.index - last_index >= self._twave
                        or not self._like_t_wave(c, self._beats[-1])]
            if not pool:
                return
            self._accept(max(pool, key=lambda c: c.amplitude), searched_back=True)


def local_maxima(env: np.ndarray, half_width: int) -> np.ndarray:
    """Indices where ``env`` is positive and the largest within +-``half_width`` (the first of equal values)."""
    w = int(half_width)
    padded = np.concatenate([np.full(w, -np.inf), env, np.full(w, -np.inf)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1)
    centre = windows[:, w]
    is_peak = (centre > windows[:, :w].max(axis=1)) & (centre >= windows[:, w + 1:].max(axis=1)) & (centre > 0)
    return np.flatnonzero(is_peak)


def make_candidate(index: int, start: int, env: np.ndarray, slope: np.ndarray, per_lead: np.ndarray,
                   loc: np.ndarray, win: int, before: int, after: int) -> Candidate:
    """A candidate at absolute ``index`` from feature arrays whose first sample is absolute ``start``.

    The R peak is the largest deviation from the local median of the localisation signal of the lead that
    contributes most, between ``before`` samples before and ``after`` samples after the envelope peak.
    """
    i = index - start
    cand_slope = float(slope[max(0, i - win): i + 1].max())
    column = per_lead[:, i]
    lead = int(np.nanargmax(column)) if np.isfinite(column).any() else 0
    a = max(0, i - before)
    b = min(env.shape[0], i + after + 1)
    seg = loc[lead, a:b]
    r_peak = index
    if seg.size and np.isfinite(seg).any():
        r_peak = start + a + int(np.nanargmax(np.abs(seg - np.nanmedian(seg))))
    return Candidate(index, float(env[i]), cand_slope, r_peak, lead)


def as_leads(signal: np.ndarray, n_leads: int | None = None) -> np.ndarray:
    """A (leads, samples) float64 view of a 1-D or 2-D signal, checking the lead count when given."""
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected a 1-D signal or (leads, samples), got shape {x.shape}")
    if n_leads is not None and x.shape[0] != n_leads:
        raise ValueError(f"detector built for {n_leads} leads got {x.shape[0]}")
    return x


def detect_r_peaks(signal: np.ndarray, fs: float, config: QrsDetectorConfig = QrsDetectorConfig(),
                   refine: bool = True) -> np.ndarray:
    """R-peak sample indices (ascending, int64) of a whole record: 1-D, or (leads, samples) with leads combined.

    Runs ``StreamingRPeakDetector`` over the record, then the hindsight pass (``refine=False`` skips both the
    hindsight pass and the edge rule and returns exactly what a stream gives). Records longer than
    ``segment_s`` are refined in overlapping segments, so memory stays bounded for Holter-length records.
    """
    x = as_leads(signal)
    n = x.shape[1]
    if not refine:
        detector = StreamingRPeakDetector(fs, x.shape[0], config)
        return np.unique(np.concatenate([detector.process(x), detector.flush()]).astype(np.int64))
    seg = max(1, int(config.segment_s * fs))
    overlap = int(config.segment_overlap_s * fs)
    parts = []
    for start in range(0, n, seg):
        lo, hi = max(0, start - overlap), min(n, start + seg + overlap)
        peaks = _refined_block(x[:, lo:hi], fs, config) + lo
        parts.append(peaks[(peaks >= start) & (peaks < start + seg)])
    peaks = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    refractory = config.refractory_ms * fs / 1000.0
    for border in range(seg, n, seg):  # a beat seen by both segments a few samples apart, across the border
        near = np.flatnonzero(np.abs(peaks - border) < refractory)
        if near.size == 2 and peaks[near[1]] - peaks[near[0]] < refractory:
            peaks = np.delete(peaks, near[1])
    # an R peak closer than half a QRS to either end belongs to a complex the record cuts off
    edge = int(round(config.edge_ms * fs / 1000.0))
    return peaks[(peaks >= edge) & (peaks < n - edge)]


def _refined_block(x: np.ndarray, fs: float, config: QrsDetectorConfig) -> np.ndarray:
    from .qrs_refine import refine_beats

    detector = StreamingRPeakDetector(fs, x.shape[0], config, keep_history=True)
    detector.process(x)
    detector.flush()
    if not detector.peaks:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(refine_beats(detector, config), dtype=np.int64)
