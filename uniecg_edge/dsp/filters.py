"""Causal IIR filters whose state carries across chunks, so a stream filtered chunk by chunk equals the block.

Every filter is a cascade of second-order sections run by ``scipy.signal.sosfilt`` with carried ``zi``, one state
per channel. Missing samples (NaN) are held at the last finite value inside the filter, so a gap never poisons the
state, and come out as NaN again. The state starts at the steady state for the first finite sample, so a DC offset
gives no start-up transient.

For amplitude measurements on complete windows, ``filter_zero_phase`` runs the same design forwards and backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from ..errors import ConfigError

__all__ = [
    "FilterConfig", "StreamingSosFilter", "HighPassFilter", "NotchFilter", "LowPassFilter", "BandPassFilter",
    "FilterChain", "design_chain", "filter_zero_phase",
]


def _nyquist_guard(cutoff_hz: float, fs: float, what: str) -> float:
    if not 0.0 < cutoff_hz < fs / 2.0:
        raise ConfigError(f"{what} cut-off {cutoff_hz:g} Hz must lie between 0 and fs/2 = {fs / 2:g} Hz")
    return float(cutoff_hz)


class StreamingSosFilter:
    """A causal filter over (channels, samples) chunks with the state carried from one chunk to the next.

    Parameters
    ----------
    sos : (n_sections, 6) array of second-order sections.
    n_channels : number of rows the chunks will have (1-D chunks are one channel).
    """

    def __init__(self, sos: np.ndarray, n_channels: int = 1) -> None:
        self.sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
        self.n_channels = int(n_channels)
        self._zi_unit = sps.sosfilt_zi(self.sos)  # (n_sections, 2): steady state for a unit step
        self._zi: np.ndarray | None = None
        self._last = np.full(self.n_channels, np.nan)  # last finite input per channel (for NaN holds)

    def reset(self) -> None:
        """Forget the state: the next chunk starts a new stream."""
        self._zi = None
        self._last[:] = np.nan

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter the next chunk; returns float64 of the chunk's shape, NaN where the input was NaN."""
        x = np.asarray(chunk, dtype=np.float64)
        one_d = x.ndim == 1
        x2 = x[None, :] if one_d else x
        if x2.shape[0] != self.n_channels:
            raise ConfigError(f"filter built for {self.n_channels} channels got a chunk with {x2.shape[0]}")
        if x2.shape[1] == 0:
            return x.copy()
        missing = ~np.isfinite(x2)
        held = _hold_missing(x2, missing, self._last) if missing.any() else x2
        if self._zi is None:
            first = np.where(np.isfinite(held[:, 0]), held[:, 0], 0.0)
            self._zi = self._zi_unit[:, None, :] * first[None, :, None]
        y, self._zi = sps.sosfilt(self.sos, held, axis=-1, zi=self._zi)
        finite_rows = np.isfinite(held[:, -1])
        self._last[finite_rows] = held[finite_rows, -1]
        if missing.any():
            y[missing] = np.nan
        return y[0] if one_d else y


def _hold_missing(x: np.ndarray, missing: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Replace NaNs by the previous finite value in the row (or ``last`` from earlier chunks, else the next one)."""
    out = x.copy()
    n = x.shape[1]
    for row in np.flatnonzero(missing.any(axis=1)):
        idx = np.where(missing[row], 0, np.arange(n))
        np.maximum.accumulate(idx, out=idx)
        values = x[row, idx]
        lead_in = missing[row] & (idx == 0) & missing[row, 0]
        if lead_in.any():
            fill = last[row]
            if not np.isfinite(fill):
                finite = np.flatnonzero(~missing[row])
                fill = x[row, finite[0]] if finite.size else 0.0
            values[lead_in] = fill
        out[row] = values
    return out


class HighPassFilter(StreamingSosFilter):
    """Baseline-wander removal: Butterworth high-pass (default 0.5 Hz, order 2)."""

    def __init__(self, fs: float, cutoff_hz: float = 0.5, order: int = 2, n_channels: int = 1) -> None:
        sos = sps.butter(order, _nyquist_guard(cutoff_hz, fs, "high-pass"), "highpass", fs=fs, output="sos")
        super().__init__(sos, n_channels)


class LowPassFilter(StreamingSosFilter):
    """Butterworth low-pass (default 40 Hz, order 4)."""

    def __init__(self, fs: float, cutoff_hz: float = 40.0, order: int = 4, n_channels: int = 1) -> None:
        sos = sps.butter(order, _nyquist_guard(cutoff_hz, fs, "low-pass"), "lowpass", fs=fs, output="sos")
        super().__init__(sos, n_channels)


class BandPassFilter(StreamingSosFilter):
    """Butterworth band-pass between ``low_hz`` and ``high_hz``."""

    def __init__(self, fs: float, low_hz: float, high_hz: float, order: int = 2, n_channels: int = 1) -> None:
        band = [_nyquist_guard(low_hz, fs, "band-pass"), _nyquist_guard(high_hz, fs, "band-pass")]
        super().__init__(sps.butter(order, band, "bandpass", fs=fs, output="sos"), n_channels)


class NotchFilter(StreamingSosFilter):
    """Mains notch (``scipy.signal.iirnotch``, default Q 30): under 1 % loss of QRS amplitude."""

    def __init__(self, fs: float, mains_hz: float = 50.0, quality: float = 30.0, n_channels: int = 1) -> None:
        b, a = sps.iirnotch(_nyquist_guard(mains_hz, fs, "notch"), quality, fs=fs)
        super().__init__(sps.tf2sos(b, a), n_channels)


@dataclass(frozen=True)
class FilterConfig:
    """The display/measurement filter chain. ``None`` switches a stage off.

    The notch is left out, with no error, where the mains frequency is not below fs/2 (e.g. 60 Hz at 100 Hz).
    """

    highpass_hz: float | None = 0.5
    notch_hz: float | None = 50.0
    lowpass_hz: float | None = 40.0
    notch_quality: float = 30.0
    highpass_order: int = 2
    lowpass_order: int = 4

    def __post_init__(self) -> None:
        if self.notch_hz is not None and self.notch_hz not in (50.0, 60.0):
            raise ConfigError(f"notch_hz must be 50, 60 or None, got {self.notch_hz!r}")


@lru_cache(maxsize=64)
def design_chain(fs: float, config: FilterConfig = FilterConfig()) -> np.ndarray:
    """The chain's second-order sections for ``fs`` (high-pass, notch, low-pass; one cascade). Cached: do not
    modify the returned array."""
    sections: list[np.ndarray] = []
    if config.highpass_hz is not None:
        sections.append(sps.butter(config.highpass_order, _nyquist_guard(config.highpass_hz, fs, "high-pass"),
                                   "highpass", fs=fs, output="sos"))
    if config.notch_hz is not None and config.notch_hz < fs / 2.0 * 0.98:
        b, a = sps.iirnotch(config.notch_hz, config.notch_quality, fs=fs)
        sections.append(sps.tf2sos(b, a))
    if config.lowpass_hz is not None:
        cutoff = min(config.lowpass_hz, 0.45 * fs)
        sections.append(sps.butter(config.lowpass_order, cutoff, "lowpass", fs=fs, output="sos"))
    if not sections:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    return np.vstack(sections)


class FilterChain(StreamingSosFilter):
    """High-pass, notch and low-pass as one streaming cascade (one ``sosfilt`` call per chunk)."""

    def __init__(self, fs: float, config: FilterConfig = FilterConfig(), n_channels: int = 1) -> None:
        self.config = config
        self.fs = float(fs)
        super().__init__(design_chain(fs, config), n_channels)


def filter_zero_phase(signal: np.ndarray, fs: float, config: FilterConfig = FilterConfig()) -> np.ndarray:
    """Zero-phase (forward-backward) version of the chain for complete windows; NaNs held, then restored."""
    x = np.asarray(signal, dtype=np.float64)
    x2 = x[None, :] if x.ndim == 1 else x
    missing = ~np.isfinite(x2)
    held = _hold_missing(x2, missing, np.full(x2.shape[0], np.nan)) if missing.any() else x2
    sos = design_chain(fs, config)
    padlen = min(held.shape[1] - 1, 3 * (2 * len(sos) + 1))
    y = sps.sosfiltfilt(sos, held, axis=-1, padlen=max(padlen, 0)) if held.shape[1] > 1 else held.copy()
    y[missing] = np.nan
    return y[0] if x.ndim == 1 else y
