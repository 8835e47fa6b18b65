"""``Simulator``: a thread that plays one serial ECG device on a pseudo-terminal, byte for byte.

The device has a clock that starts when the simulator does: sample ``p`` is due at ``p / (fs × speed)`` s.
While streaming, every due sample is encoded into the device's packets and written to the pty; while not
streaming, the clock runs on and samples are simply not sent, as on hardware. Positions are therefore absolute:
``sessions`` lists (first position, count) per streaming session and ``expected_mv(p, n)`` what the device sends
for positions ``p .. p + n - 1`` (quantised to its ADC), so tests can line a driver's output up with the truth.

Command-driven boards (OpenBCI, HackEEG) stream after their start command; Arduino-style boards (Olimex,
ProtoCentral, AD8232) reset when a program opens the port (DTR) and start talking ``boot_s`` later. Faults on
demand: ``lead_off`` windows, ``drop_every`` (lose every N-th packet), ``garbage_every`` (noise bytes after every
N-th packet) and ``disconnect(down_s)`` (the device vanishes and comes back behind the same ``link``).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ..url import UNUSED_CHANNEL
from .pty_port import PtyPort
from .waveform import WaveformSource

log = logging.getLogger(__name__)

POLL_S = 0.002
MAX_BATCH_S = 0.25  # signal time emitted per loop at most (a stalled simulator catches up in steps)


@dataclass(frozen=True)
class SimulatorConfig:
    """How a simulator behaves; saved as JSON beside recordings made from it."""

    speed: float = 1.0
    record: str | None = None  # WFDB record to stream (default: the synthetic generator)
    leads: tuple[str, ...] | None = None  # lead sent on each wire channel ('-': flat); default: the kind's
    link: str | None = None  # stable symlink to the pty
    lead_off: tuple[tuple[float, float], ...] = ()  # windows (s of signal after streaming first began): lead off
    drop_every: int = 0
    garbage_every: int = 0
    seed: int = 0
    boot_s: float = 0.3  # Arduino-style reset: port open → first byte (wall-clock seconds)
    synth: tuple[tuple[str, Any], ...] = ()  # SynthConfig options (e.g. (("hr_bpm", 90.0),))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Simulator(threading.Thread, abc.ABC):
    """Base of the per-device simulators; subclasses speak the protocol."""

    kind: ClassVar[str]
    default_leads: ClassVar[tuple[str, ...]]
    resets_on_open: ClassVar[bool] = False

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__(daemon=True)
        self.config = config or SimulatorConfig()
        self.name = f"simulator-{self.kind}"
        self.leads = tuple(self.config.leads or self.default_leads)
        self.port = PtyPort(self.config.link)
        self.streaming = False
        self.sessions: list[list[int]] = []
        self.dropped_positions: list[int] = []
        self.packets_sent = 0
        self.garbage_bytes = 0
        self._t0 = time.monotonic()
        self._emit_pos = 0
        self._source: WaveformSource | None = None
        self._source_fs = 0.0
        self._stop_event = threading.Event()
        self._connected = False
        self._boot_at: float | None = None
        self._back_at: float | None = None
        self._hang_up_request: float | None = None
        self._rng = np.random.default_rng(self.config.seed)
        self.error: BaseException | None = None

    # ---- what a subclass defines ---------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def fs(self) -> float:
        """Samples per second per channel."""

    @abc.abstractmethod
    def mv_per_count(self) -> np.ndarray:
        """(channels,) scale of one ADC count."""

    count_range: ClassVar[tuple[int, int]] = (-(2**23), 2**23 - 1)
    baseline: ClassVar[int] = 0

    @abc.abstractmethod
    def encode(self, counts: np.ndarray, start: int, lead_off: np.ndarray) -> list[tuple[int, bytes]]:
        """Packets for samples ``start ..``: counts (channels, n) int, lead_off (n,) bool → [(position, bytes)]."""

    def on_input(self, data: bytes) -> None:
        """Bytes the client wrote (commands)."""

    def on_boot(self) -> None:
        """Arduino-style boards: the sketch starts (after a reset by the port opening)."""
        self.start_streaming()

    def reset_device(self) -> None:
        """Power-on state (after the device comes back from a disconnection)."""
        self.streaming = False

    # ---- public API ----------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return self.port.path

    def start(self) -> None:  # noqa: D102 - threading.Thread.start
        super().start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        self.port.close()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def disconnect(self, down_s: float) -> None:
        """The device vanishes now and is back (behind the same link) ``down_s`` seconds later."""
        self._hang_up_request = down_s

    @property
    def source(self) -> WaveformSource:
        if self._source is None or self._source_fs != self.fs:
            synth = dict(self.config.synth)
            self._source = WaveformSource(self.fs, self.leads, self.config.record, self.config.seed, synth)
            self._source_fs = self.fs
        return self._source

    def to_counts(self, mv: np.ndarray) -> np.ndarray:
        """(channels, n) mV → ADC counts as the device would quantise them."""
        scale = self.mv_per_count()[:, None]
        counts = np.round(np.nan_to_num(mv) / scale) + self.baseline
        lo, hi = self.count_range
        return np.clip(counts, lo, hi).astype(np.int64)

    def expected_mv(self, start: int, n: int) -> np.ndarray:
        """(n, channels) mV the device sends for positions ``start ..`` (without lead-off effects)."""
        counts = self.to_counts(self.source.block(start, n))
        return ((counts - self.baseline) * self.mv_per_count()[:, None]).T.astype(np.float32)

    def position_now(self) -> int:
        return int((time.monotonic() - self._t0) * self.fs * self.config.speed)

    def start_streaming(self) -> None:
        if not self.streaming:
            self.streaming = True
            self._emit_pos = self.position_now()
            self.sessions.append([self._emit_pos, 0])

    def stop_streaming(self) -> None:
        self.streaming = False

    def restart_clock(self) -> None:
        """Positions count from 0 again (after the rate changes)."""
        self._t0 = time.monotonic()
        self._emit_pos = 0

    # ---- the loop ------------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self._step()
        except BaseException as exc:  # noqa: BLE001 - reported through .error, the thread must not die silently
            self.error = exc
            log.exception("simulator %s failed", self.kind)

    def _step(self) -> None:
        now = time.monotonic()
        if self._hang_up_request is not None:
            down, self._hang_up_request = self._hang_up_request, None
            self.port.hang_up()
            self.streaming = False
            self._connected = False
            self._back_at = now + down
        if self._back_at is not None:
            if now < self._back_at:
                time.sleep(POLL_S)
                return
            self._back_at = None
            self.reset_device()
            self.port.reopen()
        connected = self.port.client_connected()
        if connected != self._connected:
            self._connected = connected
            if connected and self.resets_on_open:
                self.reset_device()
                self._boot_at = now + self.config.boot_s
        if self._boot_at is not None and now >= self._boot_at:
            self._boot_at = None
            self.on_boot()
        data = self.port.read(POLL_S)
        if data:
            self.on_input(data)
        if self.streaming:
            self._emit()
        self.port.flush()

    def _emit(self) -> None:
        due = self.position_now()
        n = min(due - self._emit_pos, int(MAX_BATCH_S * self.fs * self.config.speed) + 1)
        if n <= 0:
            return
        start = self._emit_pos
        counts = self.to_counts(self.source.block(start, n))
        for c, lead in enumerate(self.leads):
            if lead == UNUSED_CHANNEL:
                counts[c] = self.baseline
        times = (np.arange(start, start + n) - self.sessions[0][0]) / self.fs
        off = np.zeros(n, dtype=bool)
        for begin, end in self.config.lead_off:
            off |= (times >= begin) & (times < end)
        out = bytearray()
        for position, packet in self.encode(counts, start, off):
            self.packets_sent += 1
            if self.config.drop_every and self.packets_sent % self.config.drop_every == 0:
                self.dropped_positions.append(position)
                continue
            out += packet
            if self.config.garbage_every and self.packets_sent % self.config.garbage_every == 0:
                noise = self._rng.integers(0, 256, int(self._rng.integers(1, 40)), dtype=np.uint8).tobytes()
                self.garbage_bytes += len(noise)
                out += noise
        self.port.write(bytes(out))
        self._emit_pos += n
        if self.sessions:
            self.sessions[-1][1] += n
