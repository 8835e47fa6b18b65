"""HackEEG driver sketch with an ADS1298 (or ADS1299): text and JSON-lines commands, MessagePack samples.

Starts in text mode (``200 Ok`` lines); ``jsonlines`` / ``messagepack`` switch to JSON commands
(``{"COMMAND": ..., "PARAMETERS": [...]}``). ``wreg`` sets the rate (CONFIG1) and gains (CHnSET) used when
encoding; ``start`` resets the sample number, ``rdatac`` / ``sdatac`` start / stop sending. Samples go out as
MessagePack ``{"C": 200, "D": bin8}`` frames (or base64 JSON / text lines in the other modes). During a
``lead_off`` window the channels enabled in LOFF_SENSP/N report their status bits and sit at positive full scale.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar

import numpy as np

from ..hackeeg import CHIPS, MSGPACK_SAMPLE_HEADER, REG_CH1SET, REG_CONFIG1, REG_LOFF_SENSN, REG_LOFF_SENSP
from ..openbci import DEFAULT_LEADS_8
from .base import Simulator, SimulatorConfig
from .openbci import int24_bytes

TEXT, JSONLINES, MESSAGEPACK = "text", "jsonlines", "messagepack"


def hackeeg_body(timestamp_us: int, sample_number: int, status: int, counts: np.ndarray) -> bytes:
    """The 35-byte sample of an 8-channel chip."""
    return (
        (timestamp_us & 0xFFFFFFFF).to_bytes(4, "little")
        + (sample_number & 0xFFFFFFFF).to_bytes(4, "little")
        + (status & 0xFFFFFF).to_bytes(3, "big")
        + int24_bytes(np.asarray(counts)).tobytes()
    )


class HackEegSimulator(Simulator):
    kind = "hackeeg"
    default_leads: ClassVar[tuple[str, ...]] = DEFAULT_LEADS_8

    def __init__(self, config: SimulatorConfig | None = None, chip: str = "ads1298") -> None:
        self.chip = CHIPS[chip]
        super().__init__(config)
        self._line = bytearray()
        self.reset_device()

    def reset_device(self) -> None:
        super().reset_device()
        self.mode = TEXT
        self.registers = {REG_CONFIG1: self.chip.config1 | self.chip.rates[500 if "1298" in self.chip.name else 250]}
        for channel in range(8):
            self.registers[REG_CH1SET + channel] = 0x00
        self.sample_number = 0
        self.converting = True

    @property
    def fs(self) -> float:
        code = self.registers.get(REG_CONFIG1, 0) & 0x07
        for rate, rate_code in self.chip.rates.items():
            if rate_code == code:
                return float(rate)
        return 500.0

    def mv_per_count(self) -> np.ndarray:
        by_code = {code: gain for gain, code in self.chip.gains.items()}
        gains = [by_code.get((self.registers.get(REG_CH1SET + c, 0) >> 4) & 0x07, 1) for c in range(8)]
        return np.array([self.chip.vref / g / (2**23 - 1) * 1000.0 for g in gains])

    # ---- commands ------------------------------------------------------------------------------------------
    def on_input(self, data: bytes) -> None:
        self._line += data
        while b"\n" in self._line:
            line, _, rest = bytes(self._line).partition(b"\n")
            self._line = bytearray(rest)
            text = line.decode("utf-8", errors="replace").strip()
            if text:
                self._command_line(text)

    def _respond(self, code: int = 200, status: str = "Ok", data: Any = None) -> None:
        if self.mode == TEXT:
            self.port.write(f"{code} {status}\r\n".encode())
            if data is not None:
                self.port.write(f"{data}\r\n".encode())
            return
        reply: dict[str, Any] = {"STATUS_CODE": code, "STATUS_TEXT": status}
        if data is not None:
            reply["DATA"] = data
        self.port.write(json.dumps(reply).encode() + b"\n")

    def _command_line(self, text: str) -> None:
        if self.mode == TEXT:
            command, *words = text.split()
            command = command.lower()
            try:
                params = [int(w, 16) for w in words]
            except ValueError:
                self.port.write(b"402 Error: expected hexidecimal digits.\r\n")
                return
        else:
            try:
                message = json.loads(text)
                command = str(message["COMMAND"]).lower()
                params = [int(p) for p in message.get("PARAMETERS", [])]
            except (ValueError, KeyError, TypeError, AttributeError):
                self._respond(400, "Bad request")
                return
        self._execute(command, params)

    def _execute(self, command: str, params: list[int]) -> None:
        if command in ("text", "jsonlines", "messagepack"):
            self.mode = command
            self._respond()
        elif command == "status":
            self._respond(data={"driver_version": "v0.4.0", "board_name": "HackEEG", "maker_name": "Starcat LLC",
                                "hardware_type": self.chip.name.upper(), "max_channels": 8, "active_channels": 8})
        elif command == "version":
            self._respond(200, "v0.4.0")
        elif command in ("nop", "ledon", "ledoff", "boardledon", "boardledoff", "wakeup", "standby"):
            self._respond()
        elif command == "reset":
            mode = self.mode
            self.reset_device()
            self.mode = mode
            self._respond()
        elif command == "start":
            self.converting = True
            self.sample_number = 0
            self._respond()
        elif command == "stop":
            self.converting = False
            self._respond()
        elif command == "rdatac":
            self._respond()
            self.start_streaming()
        elif command == "sdatac":
            self.stop_streaming()
            self._respond()
        elif command == "wreg" and len(params) == 2:
            if self.streaming:
                self._respond(500, "Error")
                return
            old_fs = self.fs
            self.registers[params[0] & 0xFF] = params[1] & 0xFF
            if self.fs != old_fs:
                self.restart_clock()
            self._respond()
        elif command == "rreg" and len(params) == 1:
            self._respond(data=self.registers.get(params[0] & 0xFF, 0))
        else:
            self._respond(406, "Unrecognized command")

    # ---- samples -------------------------------------------------------------------------------------------
    def _status(self, off: bool) -> int:
        """The 24-bit status word: 1100, LOFF_STATP, LOFF_STATN, GPIO."""
        if not off:
            return 0xC << 20
        sense_p = self.registers.get(REG_LOFF_SENSP, 0)
        sense_n = self.registers.get(REG_LOFF_SENSN, 0)
        return (0xC << 20) | (sense_p << 12) | (sense_n << 4)

    def encode(self, counts: np.ndarray, start: int, lead_off: np.ndarray) -> list[tuple[int, bytes]]:
        if not self.converting:
            return []
        out: list[tuple[int, bytes]] = []
        flagged = self.registers.get(REG_LOFF_SENSP, 0) | self.registers.get(REG_LOFF_SENSN, 0)
        rail = np.array([(flagged >> c) & 1 for c in range(8)], dtype=bool)
        for k in range(counts.shape[1]):
            values = counts[:8, k].copy()
            if lead_off[k]:
                values[rail] = 2**23 - 1
            timestamp = int((start + k) / self.fs * 1e6)
            body = hackeeg_body(timestamp, self.sample_number, self._status(bool(lead_off[k])), values)
            self.sample_number += 1
            if self.mode == MESSAGEPACK:
                packet = MSGPACK_SAMPLE_HEADER + bytes([len(body)]) + body
            elif self.mode == JSONLINES:
                packet = b'{"C":200,"D":"' + base64.b64encode(body) + b'"}\n'
            else:
                packet = base64.b64encode(body) + b"\r\n"
            out.append((start + k, packet))
        return out
