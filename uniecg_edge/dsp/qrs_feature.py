"""The causal QRS-energy feature behind the R-peak detector, for one or more leads.

Per lead, chunk by chunk and with every state carried (so any chunking of a stream gives the same output):

1. a running median over ``despike_ms`` (a few samples), which removes one- to three-sample impulses (electrode
   pops, pacing-like spikes) and barely touches a QRS, whose R wave lasts tens of milliseconds;
2. a 5-25 Hz Butterworth band-pass (the QRS band) and its first difference, rectified (the slope);
3. a moving average of the slope over ``integration_ms`` (the QRS-energy envelope);
4. division by the lead's scale, the median of per-second envelope maxima over the last ``scale_window_s``
   seconds (a typical QRS envelope peak), so every lead reads about 1 at a QRS;
5. a weighted mean over leads, each weighted by its squared QRS-to-floor ratio (scale / median envelope), so a
   lead full of muscle noise counts little.

The scales change only at whole seconds of absolute sample index, computed from past samples, so the output does
not depend on how the stream is cut into chunks. The first ``warmup_s`` seconds are held back so the first scale
has data (``flush`` releases a shorter stream). A localisation signal (0.5-45 Hz, causal) comes out beside the
envelope for placing each R peak on the waveform. The median delays everything by its half-width; indices in
the output are those of the input (the delay is already taken out).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .filters import BandPassFilter, FilterConfig, StreamingSosFilter, design_chain

__all__ = ["QrsFeatureConfig", "QrsFeatureExtractor", "FeatureChunk", "StreamingMedian"]


@dataclass(frozen=True)
class QrsFeatureConfig:
    band_low_hz: float = 5.0
    band_high_hz: float = 25.0
    integration_ms: float = 100.0
    despike_ms: float = 5.0  # half-width of the running median
    locate_band_hz: tuple[float, float] = (0.5, 45.0)  # the localisation signal's pass band
    scale_window_s: int = 8
    warmup_s: int = 8


@dataclass
class FeatureChunk:
    """Feature samples released by one call; ``start`` is the absolute index of the first one."""

    start: int
    envelope: np.ndarray  # (m,) weighted mean over leads of the normalised envelopes (about 1 at a QRS)
    slope: np.ndarray  # (m,) the same mean of the normalised rectified band-passed slope
    per_lead: np.ndarray  # (leads, m) normalised envelope per lead, NaN where the lead has no signal
    loc: np.ndarray  # (leads, m) localisation signal (0.5-45 Hz), NaN where missing

    @property
    def size(self) -> int:
        return int(self.envelope.shape[0])


class StreamingMedian:
    """Running median of odd length ``2 * half + 1`` along the last axis; output lags input by ``half`` samples.

    The stream's first and last values are repeated at its edges. A window holding a NaN gives the centre value.
    """

    def __init__(self, half: int, n_channels: int) -> None:
        self.half = int(half)
        self.n_channels = int(n_channels)
        self._buf: np.ndarray | None = None  # edge-padded input not yet fully used (the last 2*half and more)

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.half == 0 or x.shape[1] == 0:
            return x
        if self._buf is None:
            self._buf = np.repeat(x[:, :1], self.half, axis=1)
        self._buf = np.concatenate([self._buf, x], axis=1)
        return self._drain()

    def flush(self) -> np.ndarray:
        if self.half == 0 or self._buf is None:
            return np.zeros((self.n_channels, 0))
        self._buf = np.concatenate([self._buf, np.repeat(self._buf[:, -1:], self.half, axis=1)], axis=1)
        out = self._drain()
        self._buf = None
        return out

    def _drain(self) -> np.ndarray:
        assert self._buf is not None
        width = 2 * self.half + 1
        if self._buf.shape[1] < width:
            return np.zeros((self.n_channels, 0))
        windows = np.lib.stride_tricks.sliding_window_view(self._buf, width, axis=1)
        out = np.median(windows, axis=-1)
        bad = ~np.isfinite(out)
        if bad.any():
            centre = self._buf[:, self.half: self.half + out.shape[1]]
            out[bad] = centre[bad]
        self._buf = self._buf[:, -2 * self.half:]
        return out


class QrsFeatureExtractor:
    """Chunks of (leads, samples) in, the combined normalised envelope and the localisation signal out."""

    def __init__(self, fs: float, n_leads: int = 1, config: QrsFeatureConfig = QrsFeatureConfig()) -> None:
        self.fs = float(fs)
        self.n_leads = int(n_leads)
        self.config = config
        self._high = min(config.band_high_hz, 0.45 * self.fs)
        self._median = StreamingMedian(int(round(config.despike_ms * self.fs / 1000.0)), n_leads)
        self._band = BandPassFilter(self.fs, config.band_low_hz, self._high, order=2, n_channels=n_leads)
        self._loc = StreamingSosFilter(
            design_chain(self.fs, FilterConfig(highpass_hz=config.locate_band_hz[0], notch_hz=None,
                                               lowpass_hz=config.locate_band_hz[1], lowpass_order=2)),
            n_leads,
        )
        self.block = max(1, int(round(self.fs)))  # samples per scale update (one second)
        self.win = max(1, int(round(config.integration_ms * self.fs / 1000.0)))
        self._n_in = 0  # absolute index of the next despiked sample
        self._pending: list[np.ndarray] = []  # held back during warm-up
        self._started = False
        self._prev_band = np.full(n_leads, np.nan)
        self._tail = np.zeros((n_leads, self.win))  # last ``win`` slopes, for the moving average
        self._second_env: list[np.ndarray] = []  # envelope samples of the second in progress
        self._env_max: list[np.ndarray] = []  # per completed second, per lead
        self._env_median: list[np.ndarray] = []
        self._scale = np.full(n_leads, np.nan)
        self._weight = np.full(n_leads, 1.0 / n_leads)

    @property
    def samples_out(self) -> int:
        """Absolute index of the next output sample."""
        return self._n_in - sum(p.shape[1] for p in self._pending)

    def process(self, chunk: np.ndarray) -> FeatureChunk:
        """Feed a (leads, n) chunk (1-D for one lead); returns the feature samples released now."""
        x = np.asarray(chunk, dtype=np.float64)
        return self._feed(self._median.process(x[None, :] if x.ndim == 1 else x), final=False)

    def flush(self) -> FeatureChunk:
        """End of stream: release everything still held (median delay, warm-up)."""
        return self._feed(self._median.flush(), final=True)

    # -- internals -------------------------------------------------------------------------------------------
    def _feed(self, x: np.ndarray, final: bool) -> FeatureChunk:
        self._n_in += x.shape[1]
        if self._started:
            return self._run(x, self._n_in - x.shape[1])
        if x.shape[1]:
            self._pending.append(x)
        if not self._pending or (self._n_in < self.config.warmup_s * self.block and not final):
            return self._empty()
        data = np.concatenate(self._pending, axis=1)
        self._pending = []
        self._started = True
        self._initial_scales(data)
        return self._run(data, 0)

    def _empty(self) -> FeatureChunk:
        empty = np.zeros((self.n_leads, 0))
        return FeatureChunk(self.samples_out, np.zeros(0), np.zeros(0), empty, empty)

    def _initial_scales(self, data: np.ndarray) -> None:
        """Scales for the warm-up from the warm-up data itself (its whole seconds, or all of it if shorter)."""
        n = data.shape[1]
        band = BandPassFilter(self.fs, self.config.band_low_hz, self._high, order=2, n_channels=self.n_leads)
        env, *_ = self._envelope(band.process(data), np.full(self.n_leads, np.nan), np.zeros((self.n_leads, self.win)))
        edges = np.linspace(0, n, max(1, n // self.block) + 1).astype(int)
        skip = min(n // 4, int(0.2 * self.fs))  # the band-pass start-up
        blocks = [env[:, max(a, skip):b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
        self._set_scales(np.stack([_row_max(e) for e in blocks]), np.stack([_row_median(e) for e in blocks]))

    def _set_scales(self, env_max: np.ndarray, env_median: np.ndarray) -> None:
        """Per-lead QRS scale and lead weights from per-second envelope maxima and medians."""
        scale = _column_median(env_max)
        floor = _column_median(env_median)
        self._scale = np.where(scale > 0, scale, self._scale)
        with np.errstate(invalid="ignore", divide="ignore"):
            snr = np.where(np.isfinite(self._scale) & (floor > 0), self._scale / floor, np.nan)
        weight = np.where(np.isfinite(snr), snr**2, 0.0)
        if weight.sum() > 0:
            self._weight = weight / weight.sum()

    def _run(self, x: np.ndarray, first: int) -> FeatureChunk:
        """Process ``x`` (its first sample at absolute index ``first``), split at whole seconds for the scales."""
        parts = []
        pos = 0
        while pos < x.shape[1]:
            abs_i = first + pos
            part = x[:, pos: pos + self.block - (abs_i % self.block)]
            parts.append(self._run_part(part))
            pos += part.shape[1]
            if (abs_i + part.shape[1]) % self.block == 0:
                self._close_second()
        if not parts:
            return self._empty()
        env, slope, per_lead, loc = (np.concatenate(arrays, axis=-1) for arrays in zip(*parts, strict=True))
        return FeatureChunk(first, env, slope, per_lead, loc)

    def _run_part(self, part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        band = self._band.process(part)
        env, slope, self._prev_band, self._tail = self._envelope(band, self._prev_band, self._tail)
        self._second_env.append(env)
        missing = ~np.isfinite(part)
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = env / self._scale[:, None]
            norm_slope = slope * (self.win / self._scale[:, None])
        normalised[missing | ~np.isfinite(normalised)] = np.nan
        norm_slope[missing | ~np.isfinite(norm_slope)] = np.nan
        combined = _weighted_mean(normalised, self._weight)
        return combined, _weighted_mean(norm_slope, self._weight), normalised, self._loc.process(part)

    def _close_second(self) -> None:
        second = np.concatenate(self._second_env, axis=1) if self._second_env else np.zeros((self.n_leads, 0))
        self._second_env = []
        keep = self.config.scale_window_s
        self._env_max = (self._env_max + [_row_max(second)])[-keep:]
        self._env_median = (self._env_median + [_row_median(second)])[-keep:]
        if len(self._env_max) >= min(keep, self.config.warmup_s):
            self._set_scales(np.stack(self._env_max), np.stack(self._env_median))

    def _envelope(self, band: np.ndarray, prev_band: np.ndarray, tail: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Moving average of |first difference| over ``win`` samples, carried across chunks (NaN counts as 0)."""
        slope = np.nan_to_num(np.abs(np.diff(band, axis=1, prepend=prev_band[:, None])), nan=0.0)
        extended = np.concatenate([tail, slope], axis=1)
        csum = np.cumsum(extended, axis=1)
        n = slope.shape[1]
        # new sample k sits at extended[win + k]; its window is extended[k + 1 : win + k + 1]
        env = (csum[:, self.win: self.win + n] - csum[:, :n]) / self.win
        last = np.where(np.isfinite(band[:, -1]), band[:, -1], prev_band) if n else prev_band
        return env, slope, last, extended[:, -self.win:]


def _weighted_mean(a: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted mean over leads ignoring NaN (the weights of the leads present are renormalised); 0 if none."""
    if a.shape[0] == 1:
        return np.nan_to_num(a[0], nan=0.0)
    finite = np.isfinite(a)
    w = np.where(finite, weight[:, None], 0.0)
    total_w = w.sum(axis=0)
    total = (np.where(finite, a, 0.0) * w).sum(axis=0)
    return np.divide(total, total_w, out=np.zeros_like(total), where=total_w > 0)


def _row_max(a: np.ndarray) -> np.ndarray:
    if a.shape[1] == 0:
        return np.zeros(a.shape[0])
    return np.nan_to_num(np.fmax.reduce(a, axis=1), nan=0.0)


def _row_median(a: np.ndarray) -> np.ndarray:
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    if np.isfinite(a).all():
        return np.median(a, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=1)


def _column_median(a: np.ndarray) -> np.ndarray:
    """Median over rows (seconds) of the positive finite values, per column (lead); NaN where there are none."""
    if (a > 0).all():
        return np.median(a, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.where(a > 0, a, np.nan), axis=0)
