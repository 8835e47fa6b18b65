"""OpenBCI Cyton (and Cyton + Daisy) as seen through the USB dongle: 33-byte packets and the SDK's commands.

Answers ``v`` (soft reset), ``d`` (defaults), ``c`` / ``C`` (8 / 16 channels), ``x<ch><pd><gain><in><bias><srb2>
<srb1>X`` (channel settings, gain honoured when encoding), ``V``, ``?`` and ``~~``; ``b`` / ``s`` start / stop.
Replies end with ``$$$`` and are sent only while not streaming, as the SDK documents.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..openbci import CYTON_GAINS, CYTON_PACKET, DAISY_CHANNEL_KEYS, DEFAULT_LEADS_8, cyton_mv_per_count
from .base import Simulator, SimulatorConfig

V_REPLY = (
    "OpenBCI V3 8-16 channel\nOn Board ADS1299 Device ID: 0x3E\n{daisy}LIS3DH Device ID: 0x33\n"
    "Firmware: v3.1.1\n$$$"
)


def int24_bytes(counts: np.ndarray) -> np.ndarray:
    """(..., ) int → (..., 3) uint8 big-endian two's complement."""
    value = counts.astype(np.int64) & 0xFFFFFF
    return np.stack([(value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF], axis=-1).astype(np.uint8)


def cyton_packets(counts: np.ndarray, counters: np.ndarray, footer: int = 0xC0) -> np.ndarray:
    """(n, 33) uint8 packets from (n, 8) counts and (n,) sample numbers."""
    n = counts.shape[0]
    packets = np.zeros((n, CYTON_PACKET), dtype=np.uint8)
    packets[:, 0] = 0xA0
    packets[:, 1] = counters.astype(np.int64) % 256
    packets[:, 2:26] = int24_bytes(counts).reshape(n, 24)
    packets[:, 32] = footer
    return packets


class CytonSimulator(Simulator):
    kind = "openbci"
    default_leads: ClassVar[tuple[str, ...]] = DEFAULT_LEADS_8
    has_daisy: ClassVar[bool] = False

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__(config)
        self._command = bytearray()
        self.reset_device()

    def reset_device(self) -> None:
        super().reset_device()
        self.gain_codes = [6] * 16
        self.daisy_attached = self.has_daisy
        self.counter = 0

    @property
    def fs(self) -> float:
        return 125.0 if self.daisy_attached else 250.0

    @property
    def wire_channels(self) -> int:
        return 16 if self.daisy_attached else 8

    def mv_per_count(self) -> np.ndarray:
        channels = len(self.leads)
        return np.array([cyton_mv_per_count(CYTON_GAINS[self.gain_codes[c]]) for c in range(channels)])

    # ---- commands ------------------------------------------------------------------------------------------
    def _reply(self, text: str) -> None:
        if not self.streaming:
            self.port.write(text.encode("ascii"))

    def on_input(self, data: bytes) -> None:
        for byte in data:
            char = chr(byte)
            if self._command:
                self._command.append(byte)
                self._continue_command()
                continue
            if char in "x~":
                self._command.append(byte)
            elif char == "v":
                self.stop_streaming()
                self.reset_device()
                self._reply(V_REPLY.format(daisy="On Daisy ADS1299 Device ID: 0x3E\n" if self.has_daisy else ""))
            elif char == "d":
                self.gain_codes = [6] * 16
                self._reply("updating channel settings to default$$$")
            elif char == "b":
                if not self.streaming:
                    self.start_streaming()
            elif char == "s":
                self.stop_streaming()
            elif char == "c":
                self._set_daisy(False)
                self._reply("daisy removed$$$" if self.has_daisy else "no daisy to remove$$$")
            elif char == "C":
                self._set_daisy(self.has_daisy)
                self._reply("daisy attached16$$$" if self.has_daisy else "no daisy to attach!8$$$")
            elif char == "V":
                self._reply("v3.1.1$$$")
            elif char == "?":
                self._reply("Board ADS Registers\nADS_ID, 00, 3E, 0, 0, 1, 1, 1, 1, 1, 0\n$$$")

    def _set_daisy(self, attached: bool) -> None:
        if attached != self.daisy_attached:
            self.daisy_attached = attached
            self.restart_clock()

    def _continue_command(self) -> None:
        command = self._command
        if command[0] == ord("~"):
            if len(command) == 2:
                self._reply(f"Sample rate is {int(self.fs * (2 if self.daisy_attached else 1))}Hz$$$")
                command.clear()
            return
        if len(command) < 9:  # x + 7 settings + X
            return
        text = command.decode("ascii", errors="replace")
        command.clear()
        if text[8] != "X":
            self._reply("Failure: 9th char not X$$$")
            return
        channel = DAISY_CHANNEL_KEYS.find(text[1])
        gain = text[3]
        if channel < 0 or not gain.isdigit() or int(gain) >= len(CYTON_GAINS):
            self._reply("Failure: too few chars$$$")
            return
        self.gain_codes[channel] = int(gain)
        self._reply(f"Success: Channel set for {channel + 1}$$$")

    # ---- packets -------------------------------------------------------------------------------------------
    def encode(self, counts: np.ndarray, start: int, lead_off: np.ndarray) -> list[tuple[int, bytes]]:
        n = counts.shape[1]
        if not self.daisy_attached:
            counters = self.counter + 1 + np.arange(n)
            self.counter = int(counters[-1]) % 256
            packets = cyton_packets(counts[:8].T, counters)
            return [(start + k, packets[k].tobytes()) for k in range(n)]
        # Daisy: per row, the Cyton's packet (odd sample number) then the Daisy's (even)
        board = cyton_packets(counts[:8].T, 2 * ((self.counter + 1 + np.arange(n)) % 128) + 1)
        daisy = cyton_packets(counts[8:16].T, 2 * ((self.counter + 1 + np.arange(n)) % 128) + 2)
        self.counter = (self.counter + n) % 128
        out: list[tuple[int, bytes]] = []
        for k in range(n):
            out.append((start + k, board[k].tobytes()))
            out.append((start + k, daisy[k].tobytes()))
        return out


class CytonDaisySimulator(CytonSimulator):
    kind = "openbci-daisy"
    default_leads: ClassVar[tuple[str, ...]] = DEFAULT_LEADS_8 + tuple(f"CH{i}" for i in range(9, 17))
    has_daisy: ClassVar[bool] = True
