"""HackEEG driver sketch (Arduino Due + TI ADS1298 / ADS1299) in MessagePack mode.

Commands are JSON lines (``{"COMMAND": "wreg", "PARAMETERS": [1, 134]}``, replies ``{"STATUS_CODE": 200, ...}``);
samples come as MessagePack maps ``82 A1 43 CC C8 A1 44 C4 <n>`` = {"C": 200, "D": bin8(n)} whose body is a
4-byte ``micros()`` timestamp and a 4-byte sample number (little-endian on the SAM3X), the ADS129x 24-bit status
word (``1100`` + LOFF_STATP[8] + LOFF_STATN[8] + GPIO[4]) and 3 bytes (int24 big-endian) per channel.

Handshake: ``sdatac`` and ``jsonlines`` in both text and JSON form (the board may be left in either mode), then
``status`` (chip type), ``wreg`` of CONFIG1 (rate), CHnSET (gain, normal input), LOFF_SENSP/N and CONFIG4 (lead-off
comparators on), ``messagepack``; streaming is ``start`` (resets the sample number) then ``rdatac``.
Lead-off: a channel is flagged when its LOFF_STATP or LOFF_STATN bit is set.
Scale: mV = counts × VREF / gain / (2²³ − 1) × 1000 with VREF 2.4 V (ADS1298) or 4.5 V (ADS1299), as assumed from
TI's datasheets.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, DeviceError
from .base import DeviceSpec, register_device
from .framing import Frame, FrameFormat
from .openbci import DEFAULT_LEADS_8, int24_be
from .serial_device import SerialDevice, leads_param, serial_params
from .url import DeviceUrl, ParamSpec

MSGPACK_SAMPLE_HEADER = bytes([0x82, 0xA1, 0x43, 0xCC, 0xC8, 0xA1, 0x44, 0xC4])
BODY_PREFIX = 8  # timestamp + sample number

# ADS129x registers
REG_CONFIG1 = 0x01
REG_CH1SET = 0x05
REG_LOFF_SENSP = 0x0F
REG_LOFF_SENSN = 0x10
REG_CONFIG4 = 0x17
PD_LOFF_COMP = 0x02


class Chip:
    """Rate codes, gain codes and reference of one ADS129x family member."""

    def __init__(self, name: str, vref: float, config1: int, rates: dict[int, int], gains: dict[int, int]) -> None:
        self.name = name
        self.vref = vref
        self.config1 = config1
        self.rates = rates
        self.gains = gains


CHIPS = {
    "ads1298": Chip("ads1298", 2.4, 0x80,  # HR mode
                    {32000: 0, 16000: 1, 8000: 2, 4000: 3, 2000: 4, 1000: 5, 500: 6},
                    {6: 0, 1: 1, 2: 2, 3: 3, 4: 4, 8: 5, 12: 6}),
    "ads1299": Chip("ads1299", 4.5, 0x90,
                    {16000: 0, 8000: 1, 4000: 2, 2000: 3, 1000: 4, 500: 5, 250: 6},
                    {1: 0, 2: 1, 4: 2, 6: 3, 8: 4, 12: 5, 24: 6}),
}


def body_length(channels: int) -> int:
    return BODY_PREFIX + 3 * (channels + 1)


class HackEegFormat(FrameFormat):
    header = MSGPACK_SAMPLE_HEADER
    counter_modulus = 2**32

    def __init__(self, channels: int = 8) -> None:
        self.channels = channels
        self.max_length = len(MSGPACK_SAMPLE_HEADER) + 1 + body_length(channels)

    def length_at(self, buf: bytearray, i: int) -> int | None:
        at = i + len(MSGPACK_SAMPLE_HEADER)
        if len(buf) <= at:
            return None
        return self.max_length if buf[at] == body_length(self.channels) else 0

    def is_valid(self, buf: bytearray, i: int, length: int) -> bool:
        return buf[i + 9 + BODY_PREFIX] & 0xF0 == 0xC0  # status word starts with 1100

    def counter(self, buf: bytearray, i: int) -> int | None:
        return int.from_bytes(buf[i + 13 : i + 17], "little")


def decode_hackeeg(frames: list[Frame], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, channels) int32 counts and (n, channels) lead-off flags."""
    length = 9 + body_length(channels)
    raw = np.frombuffer(b"".join(f.data for f in frames), dtype=np.uint8).reshape(len(frames), length)
    status = raw[:, 17:20].astype(np.int32)
    word = (status[:, 0] << 16) | (status[:, 1] << 8) | status[:, 2]
    off_bits = ((word >> 12) & 0xFF) | ((word >> 4) & 0xFF)
    lead_off = ((off_bits[:, None] >> np.arange(channels)) & 1).astype(bool)
    counts = int24_be(raw[:, 20:].reshape(len(frames), channels, 3))
    return counts, lead_off


@register_device("hackeeg")
class HackEegDevice(SerialDevice):
    spec = DeviceSpec(
        kind="hackeeg",
        description="HackEEG (Arduino Due + ADS1298/ADS1299): JSON-lines commands, MessagePack sample frames",
        transport="serial",
        fs=500.0,
        channels=8,
        default_leads=DEFAULT_LEADS_8,
        params=(
            ParamSpec("chip", "str", "auto", "ADS129x type (auto: as the board reports)",
                      choices=("auto", "ads1298", "ads1299")),
            ParamSpec("fs", "float", 500.0, "sample rate (a rate the chip supports)", minimum=250.0,
                      maximum=32000.0),
            ParamSpec("gain", "int", 6, "PGA gain of every channel (ADS1298: 1-12, ADS1299: 1-24)",
                      choices=(1, 2, 3, 4, 6, 8, 12, 24)),
            leads_param(DEFAULT_LEADS_8),
            *serial_params(2_000_000),
        ),
        lead_off="LOFF_STATP/LOFF_STATN bits of the ADS129x status word, per channel",
        notes="TI's ADS1298 ECG front end wires CH1..CH8 as V6,I,II,V2,V3,V4,V5,V1: pass that as ?leads=.",
    )
    wire_channels: ClassVar[int] = 8
    reports_lead_off: ClassVar[bool] = True

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self._chip_name = str(self.params["chip"])
        self._leftover = b""
        if self._chip_name != "auto":
            self._check_settings(CHIPS[self._chip_name])

    def frame_format(self) -> FrameFormat:
        return HackEegFormat(8)

    def _chip(self) -> Chip:
        return CHIPS["ads1298" if self._chip_name == "auto" else self._chip_name]

    def _check_settings(self, chip: Chip) -> None:
        fs = int(self.params["fs"])
        gain = int(self.params["gain"])
        if fs != self.params["fs"] or fs not in chip.rates:
            allowed = ", ".join(str(r) for r in sorted(chip.rates))
            raise ConfigError(f"{self.url.text}: {chip.name} cannot sample at fs={self.params['fs']:g} "
                              f"(allowed: {allowed})")
        if gain not in chip.gains:
            allowed = ", ".join(str(g) for g in sorted(chip.gains))
            raise ConfigError(f"{self.url.text}: {chip.name} has no gain {gain} (allowed: {allowed})")

    def mv_per_count(self) -> float:
        return self._chip().vref / float(self.params["gain"]) / (2**23 - 1) * 1000.0

    def info_extra(self) -> dict[str, Any]:
        return {**super().info_extra(), "chip": self._chip_name}

    # ---- JSON lines ----------------------------------------------------------------------------------------
    def _json_command(self, command: str, parameters: list[int] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"COMMAND": command}
        if parameters is not None:
            message["PARAMETERS"] = parameters
        self.port.write(json.dumps(message).encode() + b"\n")
        deadline = time.monotonic() + self.handshake_timeout
        pending = bytearray()
        while time.monotonic() < deadline:
            pending += self.port.read_available(min(0.05, max(0.0, deadline - time.monotonic())))
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending = bytearray(rest)
                reply = _json_line(line)
                if reply is not None and "STATUS_CODE" in reply:
                    if reply["STATUS_CODE"] != 200:
                        raise DeviceError(
                            f"HackEEG on {self.port.path} refused {command!r}: "
                            f"{reply.get('STATUS_CODE')} {reply.get('STATUS_TEXT', '')}".rstrip()
                        )
                    self._leftover = bytes(pending)
                    return reply
        raise DeviceError(
            f"no reply from HackEEG on {self.port.path} to {command!r} within {self.handshake_timeout:g} s "
            "(wrong port, or not running the HackEEG driver sketch?)"
        )

    def _handshake(self) -> None:
        self.port.write(b"sdatac\n" + b'{"COMMAND": "sdatac"}\n')
        self.port.drain(quiet=0.1, limit=1.0)
        self.port.write(b"jsonlines\n")
        self.port.drain(quiet=0.1, limit=1.0)
        status = self._json_command("status")
        data = status.get("DATA")
        if not isinstance(data, dict):
            data = {}
        hardware = str(data.get("hardware_type", "")).lower()
        if self._chip_name == "auto":
            if hardware not in ("ads1298", "ads1299"):
                raise DeviceError(f"HackEEG on {self.port.path} reports chip {hardware or 'unknown'!r}; "
                                  "pass ?chip=ads1298 or ?chip=ads1299")
            self._chip_name = hardware
            self._check_settings(CHIPS[hardware])
        chip = self._chip()
        self._json_command("wreg", [REG_CONFIG1, chip.config1 | chip.rates[int(self.params["fs"])]])
        gain_code = chip.gains[int(self.params["gain"])] << 4
        for channel in range(8):
            self._json_command("wreg", [REG_CH1SET + channel, gain_code])
        mask = sum(1 << c for c in self._channel_index)
        self._json_command("wreg", [REG_LOFF_SENSP, mask])
        self._json_command("wreg", [REG_LOFF_SENSN, mask])
        self._json_command("wreg", [REG_CONFIG4, PD_LOFF_COMP])
        self._json_command("messagepack")

    def _start_stream(self) -> None:
        self._json_command("start")
        self._json_command("rdatac")  # frames may follow the reply at once: _leftover keeps them for ingest

    def _stop_stream(self) -> None:
        self.port.write(b'{"COMMAND": "sdatac"}\n')

    def ingest(self, data: bytes, t: float):  # type: ignore[no-untyped-def]
        if self._leftover:
            data, self._leftover = self._leftover + data, b""
        return super().ingest(data, t)

    def _decode(self, frames: list[Frame]) -> tuple[np.ndarray, np.ndarray | None]:
        counts, lead_off = decode_hackeeg(frames, 8)
        return (counts * self.mv_per_count()).astype(np.float32), lead_off


def _json_line(line: bytes) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith(b"{"):
        return None
    try:
        value = json.loads(text.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
