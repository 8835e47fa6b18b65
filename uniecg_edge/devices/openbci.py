"""OpenBCI Cyton (8 channels, 250 Hz) and Cyton + Daisy (16 channels, 125 Hz) over the USB dongle.

Packet (33 bytes): ``A0``, sample number (u8, wraps), 8 × int24 big-endian, 6 aux bytes, footer ``C0``-``C6``.
Scale: mV = counts × 4.5 V / gain / (2²³ − 1) × 1000. Handshake: ``s`` (stop a stream left running), ``v`` (soft
reset, reply ends ``$$$``), ``d`` (default channel settings; a reply starting ``Failure`` means the dongle is on but
the board is off), then one ``x<ch>0<gain>0110X`` per channel when the URL asks for a gain other than 24, and
``b`` / ``s`` to start / stop. The stream carries no lead-off flags.

Daisy: packets alternate boards, odd sample numbers from the Cyton (channels 1-8), even from the Daisy (9-16);
one 16-channel row per pair, 125 rows/s. A pair shares ``(n + 1) // 2`` (mod 128), which this driver uses as the
row counter, so a lost half leaves NaN in its 8 columns only.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import DeviceError
from .base import DeviceSpec, register_device
from .framing import Frame, FrameFormat
from .serial_device import Rows, SerialDevice, empty_rows, leads_param, serial_params
from .url import DeviceUrl, ParamSpec

CYTON_PACKET = 33
CYTON_GAINS = (1, 2, 4, 6, 8, 12, 24)
CYTON_VREF = 4.5
DEFAULT_LEADS_8 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
DAISY_CHANNEL_KEYS = "12345678QWERTYUI"  # x-command channel names, 1-16


def cyton_mv_per_count(gain: float) -> float:
    return CYTON_VREF / gain / (2**23 - 1) * 1000.0


def int24_be(raw: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 big-endian two's complement → int32."""
    value = (raw[..., 0].astype(np.int32) << 16) | (raw[..., 1].astype(np.int32) << 8) | raw[..., 2].astype(np.int32)
    return np.where(value >= 1 << 23, value - (1 << 24), value)


class CytonFormat(FrameFormat):
    header = b"\xa0"
    max_length = CYTON_PACKET
    counter_modulus = 256

    def length_at(self, buf: bytearray, i: int) -> int | None:
        return CYTON_PACKET

    def is_valid(self, buf: bytearray, i: int, length: int) -> bool:
        return 0xC0 <= buf[i + CYTON_PACKET - 1] <= 0xC6

    def counter(self, buf: bytearray, i: int) -> int | None:
        return buf[i + 1]


def decode_cyton(frames: list[Frame], gain: float) -> np.ndarray:
    """(n, 8) float32 mV from Cyton packets."""
    raw = np.frombuffer(b"".join(f.data for f in frames), dtype=np.uint8).reshape(len(frames), CYTON_PACKET)
    counts = int24_be(raw[:, 2:26].reshape(len(frames), 8, 3))
    return (counts * cyton_mv_per_count(gain)).astype(np.float32)


def _openbci_params(leads: tuple[str, ...]) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec("gain", "int", 24, "ADS1299 PGA gain of every channel", choices=CYTON_GAINS),
        leads_param(leads),
        *serial_params(115200),
    )


@register_device("openbci")
class CytonDevice(SerialDevice):
    spec = DeviceSpec(
        kind="openbci",
        description="OpenBCI Cyton (ADS1299) through its USB dongle: 33-byte packets, v/d/b/s handshake",
        transport="serial",
        fs=250.0,
        channels=8,
        default_leads=DEFAULT_LEADS_8,
        params=_openbci_params(DEFAULT_LEADS_8),
        lead_off="not reported (the Cyton stream has no lead-off flags)",
        notes="The dongle caps the rate at 250 Hz. Range at gain 24: ±187.5 mV.",
    )
    wire_channels: ClassVar[int] = 8

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self._gain = float(self.params["gain"])

    def frame_format(self) -> FrameFormat:
        return CytonFormat()

    def mv_per_count(self) -> float:
        return cyton_mv_per_count(self._gain)

    def _command(self, command: bytes, what: str) -> str:
        self.port.write(command)
        reply = self.port.read_until(b"$$$", self.handshake_timeout)
        if b"$$$" not in reply:
            raise DeviceError(
                f"no reply from the OpenBCI board on {self.port.path} to {what} within {self.handshake_timeout:g} s "
                "(board off, dongle not paired, or wrong port?)"
            )
        return reply.decode("ascii", errors="replace")

    def _handshake(self) -> None:
        self.port.write(b"s")
        self.port.drain(quiet=0.05, limit=0.5)
        self._command(b"v", "'v' (soft reset)")
        reply = self._command(b"d", "'d' (default settings)")
        if "Failure" in reply:
            raise DeviceError(f"the OpenBCI dongle on {self.port.path} answers but the board does not (is it on?)")
        self._attach_daisy()
        if self._gain != 24:
            code = str(CYTON_GAINS.index(int(self._gain)))
            for channel in DAISY_CHANNEL_KEYS[: self.wire_channels]:
                reply = self._command(f"x{channel}0{code}0110X".encode(), f"channel {channel} settings")
                if "Success" not in reply:
                    raise DeviceError(
                        f"the OpenBCI board on {self.port.path} refused gain {self._gain:g} for channel {channel}: "
                        f"{reply.strip()[:80]}"
                    )

    def _attach_daisy(self) -> None:
        """Cyton alone: make sure the board sends 8 channels (the reply, if any, does not matter)."""
        self.port.write(b"c")
        self.port.read_until(b"$$$", 0.3)

    def _start_stream(self) -> None:
        self.port.write(b"b")

    def _stop_stream(self) -> None:
        self.port.write(b"s")

    def _decode(self, frames: list[Frame]) -> tuple[np.ndarray, np.ndarray | None]:
        return decode_cyton(frames, self._gain), None


@register_device("openbci-daisy")
class CytonDaisyDevice(CytonDevice):
    spec = DeviceSpec(
        kind="openbci-daisy",
        description="OpenBCI Cyton + Daisy (2 × ADS1299): packets alternate boards, one 16-channel row per pair",
        transport="serial",
        fs=125.0,
        channels=16,
        default_leads=DEFAULT_LEADS_8 + tuple(f"CH{i}" for i in range(9, 17)),
        params=_openbci_params(DEFAULT_LEADS_8 + tuple(f"CH{i}" for i in range(9, 17))),
        lead_off="not reported (the Cyton stream has no lead-off flags)",
        notes="Channels 9-16 are named CH9..CH16 unless ?leads= maps them; '-' leaves a channel out.",
    )
    wire_channels: ClassVar[int] = 16

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self._held: tuple[int, np.ndarray] | None = None  # the last row while its Daisy half may still come
        self._last_pair: int | None = None

    def counter_modulus(self) -> int:
        return 128  # pair counter (n + 1) // 2

    def repeats_are_samples(self) -> bool:
        return False

    def _attach_daisy(self) -> None:
        reply = self._command(b"C", "'C' (16 channels)")
        if "no daisy" in reply.lower():
            raise DeviceError(f"no Daisy module on the OpenBCI board on {self.port.path} (use openbci:// instead)")

    def _reset_session(self) -> None:
        super()._reset_session()
        self._last_pair = None

    def ingest(self, data: bytes, t: float) -> Rows:
        assert self.scanner is not None
        frames = self.scanner.feed(data)
        self._sync_scan_stats()
        if not frames:
            return empty_rows(16)
        self.stats.frames += len(frames)
        values = decode_cyton(frames, self._gain)
        indices: list[int] = []
        rows: list[np.ndarray] = []
        if self._held is not None:
            indices.append(self._held[0])
            rows.append(self._held[1])
            self._held = None
        for frame, value in zip(frames, values, strict=True):
            counter = frame.counter if frame.counter is not None else 0
            pair = ((counter + 1) // 2) % 128
            columns = slice(0, 8) if counter % 2 == 1 else slice(8, 16)
            joins_last_row = bool(rows) and pair == self._last_pair and bool(np.isnan(rows[-1][columns.start]))
            if not joins_last_row:
                index = self.clock.place(pair, t)
                self._last_pair = pair
                if index < 0:  # a repeated half: nothing new
                    continue
                indices.append(index)
                rows.append(np.full(16, np.nan, dtype=np.float32))
            rows[-1][columns] = value
        if rows and np.isnan(rows[-1][8]) and not np.isnan(rows[-1][0]):
            self._held = (indices.pop(), rows.pop())  # its Daisy half has not arrived yet
        if not rows:
            return empty_rows(16)
        block = np.stack(rows)
        self.stats.missing_samples += int(np.isnan(block[:, [0, 8]]).any(axis=1).sum())  # rows missing one half
        return np.asarray(indices, dtype=np.int64), block, None
