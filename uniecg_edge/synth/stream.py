"""``SynthStream``: an endless, deterministic 12-lead stream; chunk boundaries are invisible."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..leads import STANDARD_LEADS
from .config import SynthConfig
from .engine import SynthEngine


class SynthStream:
    """Reads continue where the last one ended; any split of reads gives the same samples bit for bit.

    The samples equal ``synthesize(config, ...)`` over the same span (both render the same fixed blocks).
    """

    leads: tuple[str, ...] = STANDARD_LEADS

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self._engine = SynthEngine(config)
        self._pending: list[np.ndarray] = []  # rendered blocks not yet fully read
        self._offset = 0  # samples of _pending[0] already read
        self._available = 0
        self._sample_index = 0

    @property
    def fs(self) -> float:
        return float(self.config.fs)

    @property
    def sample_index(self) -> int:
        """Index of the next sample ``read`` returns (= samples read so far)."""
        return self._sample_index

    def read(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` samples: (12, n_samples) float32 mV in ``STANDARD_LEADS`` order."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise InputError(f"SynthStream.read needs a sample count >= 0, got {n_samples!r}")
        n = int(n_samples)
        while self._available < n:
            block = self._engine.render_block()
            self._pending.append(block)
            self._available += block.shape[1]
        out = np.empty((len(self.leads), n), dtype=np.float32)
        filled = 0
        while filled < n:
            block = self._pending[0]
            take = min(n - filled, block.shape[1] - self._offset)
            out[:, filled : filled + take] = block[:, self._offset : self._offset + take]
            filled += take
            self._offset += take
            if self._offset == block.shape[1]:
                self._pending.pop(0)
                self._offset = 0
        self._available -= n
        self._sample_index += n
        return out
