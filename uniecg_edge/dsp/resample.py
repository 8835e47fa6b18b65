"""Streaming rational resampling (e.g. 250 -> 500 Hz, 360 -> 500 Hz) with the state carried across chunks.

The same polyphase anti-aliasing filter as ``scipy.signal.resample_poly`` (Kaiser window, beta 5, 10 zero
crossings per side), applied as a causal FIR whose delay is taken out: output sample ``n`` is the signal at time
``n / fs_out``. Outputs come out as soon as the input they need has arrived (a latency of about ten input samples
at the lower rate); ``flush`` ends the stream with zeros, as ``resample_poly`` pads. A block resampled in one call
equals the same samples fed in chunks. NaN (missing) inputs are held at the last finite value inside the filter
and outputs whose nearest input was missing come out NaN, so gaps stay gaps.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

__all__ = ["StreamingResampler", "resample_block"]


class StreamingResampler:
    """Resample (channels, samples) chunks from ``fs_in`` to ``fs_out``."""

    def __init__(self, fs_in: float, fs_out: float, n_channels: int = 1, max_denominator: int = 1000) -> None:
        ratio = Fraction(fs_out / fs_in).limit_denominator(max_denominator)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.fs_in, self.fs_out = float(fs_in), float(fs_in) * self.up / self.down
        self.n_channels = int(n_channels)
        max_rate = max(self.up, self.down)
        half = 10 * max_rate
        self.taps = sps.firwin(2 * half + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self.delay = half  # in upsampled samples
        # polyphase: phase p uses taps p, p + up, p + 2 up, ...
        per_phase = -(-self.taps.size // self.up)
        padded = np.zeros(per_phase * self.up)
        padded[: self.taps.size] = self.taps
        self._phases = padded.reshape(per_phase, self.up).T  # (up, per_phase)
        self._per_phase = per_phase
        self._history = np.zeros((self.n_channels, per_phase))  # inputs before the buffer (zeros: resample_poly)
        self._buffer = np.zeros((self.n_channels, 0))
        self._missing = np.zeros((self.n_channels, 0), dtype=bool)
        self._buffer_start = 0  # absolute input index of the buffer's first sample
        self._n_in = 0
        self._n_out = 0  # next output index
        self._last = np.zeros(self.n_channels)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed input; returns the output samples that became computable (channels, m), float64."""
        x = np.asarray(chunk, dtype=np.float64)
        one_d = x.ndim == 1
        x = x[None, :] if one_d else x
        missing = ~np.isfinite(x)
        if missing.any():
            x = x.copy()
            for row in np.flatnonzero(missing.any(axis=1)):
                last = self._last[row]
                for k in range(x.shape[1]):
                    if missing[row, k]:
                        x[row, k] = last
                    else:
                        last = x[row, k]
        if x.shape[1]:
            self._last = x[:, -1].copy()
        self._buffer = np.concatenate([self._buffer, x], axis=1)
        self._missing = np.concatenate([self._missing, missing], axis=1)
        self._n_in += x.shape[1]
        out = self._emit(self._n_in)
        return out[0] if one_d else out

    def flush(self) -> np.ndarray:
        """End of stream: emit the rest, as ``resample_poly`` would (ceil(n * up / down) samples in all)."""
        total = -(-self._n_in * self.up // self.down)
        need = max(0, (total - 1) * self.down + self.delay) // self.up + 1
        pad = max(0, need - self._n_in)
        if pad:
            self._buffer = np.concatenate([self._buffer, np.zeros((self.n_channels, pad))], axis=1)
            self._missing = np.concatenate([self._missing, np.zeros((self.n_channels, pad), bool)], axis=1)
        out = self._emit(self._n_in + pad, limit=total)
        return out

    def _emit(self, available: int, limit: int | None = None) -> np.ndarray:
        # output n needs input index i0 = (n * down + delay) // up, available when i0 < ``available``
        last_n = (available * self.up - 1 - self.delay) // self.down  # largest n with i0 <= available - 1
        stop = last_n + 1 if limit is None else min(last_n + 1, limit)
        n = np.arange(self._n_out, max(self._n_out, stop))
        if n.size == 0:
            return np.zeros((self.n_channels, 0))
        pos = n * self.down + self.delay
        phase, i0 = pos % self.up, pos // self.up
        full = np.concatenate([self._history, self._buffer], axis=1)
        base = self._buffer_start - self._per_phase  # absolute index of full[:, 0]
        idx = (i0[:, None] - np.arange(self._per_phase)[None, :]) - base  # (m, per_phase)
        gathered = full[:, idx]  # (channels, m, per_phase)
        out = np.einsum("cmk,mk->cm", gathered, self._phases[phase])
        nearest = np.clip(np.rint(n * self.down / self.up).astype(np.int64) - self._buffer_start, 0,
                          self._missing.shape[1] - 1)
        if self._missing.any():
            out[self._missing[:, nearest]] = np.nan
        self._n_out = int(n[-1]) + 1
        # drop inputs no later output can need
        next_i0 = (self._n_out * self.down + self.delay) // self.up
        keep_from = next_i0 - self._per_phase + 1
        drop = max(0, min(keep_from - self._buffer_start, self._buffer.shape[1]))
        if drop:
            tail = np.concatenate([self._history, self._buffer[:, :drop]], axis=1)[:, -self._per_phase:]
            self._history = tail
            self._buffer = self._buffer[:, drop:]
            self._missing = self._missing[:, drop:]
            self._buffer_start += drop
        return out


def resample_block(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """A whole block through ``StreamingResampler`` (process + flush): (channels, ceil(n * up / down))."""
    x = np.asarray(signal, dtype=np.float64)
    one_d = x.ndim == 1
    x = x[None, :] if one_d else x
    r = StreamingResampler(fs_in, fs_out, x.shape[0])
    out = np.concatenate([r.process(x), r.flush()], axis=1)
    return out[0] if one_d else out
