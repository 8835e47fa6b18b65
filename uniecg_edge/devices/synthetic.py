"""``synthetic://?hr=72&rhythm=sinus&axis=60&noise=0.02``: the package's 12-lead generator as a live device.

Wraps ``uniecg_edge.synth.SynthStream`` (deterministic for a given ``seed``), paced in real time × ``speed``.
``noise`` is the RMS of muscle noise, ``mains`` the amplitude of mains interference and ``wander`` the baseline
wander, all in mV (0 = clean).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..leads import STANDARD_LEADS, find_lead
from .base import DeviceInfo, DeviceSpec, register_device
from .paced import PacedDevice
from .url import DeviceUrl, ParamSpec


@register_device("synthetic")
class SyntheticDevice(PacedDevice):
    spec = DeviceSpec(
        kind="synthetic",
        description="the built-in synthetic 12-lead ECG (cardiac-dipole model), paced in real time",
        transport="generator",
        fs=500.0,
        channels=12,
        default_leads=STANDARD_LEADS,
        params=(
            ParamSpec("hr", "float", 72.0, "heart rate (bpm)", minimum=20.0, maximum=300.0),
            ParamSpec("rhythm", "str", "sinus", "rhythm name (see uniecg_edge.synth.RHYTHMS)"),
            ParamSpec("axis", "float", 60.0, "frontal QRS axis (degrees)", minimum=-180.0, maximum=180.0),
            ParamSpec("noise", "float", 0.0, "muscle-noise RMS (mV)", minimum=0.0, maximum=5.0),
            ParamSpec("mains", "float", 0.0, "mains interference amplitude (mV)", minimum=0.0, maximum=5.0),
            ParamSpec("mains_hz", "float", 50.0, "mains frequency (Hz)", choices=(50.0, 60.0)),
            ParamSpec("wander", "float", 0.0, "baseline wander (mV)", minimum=0.0, maximum=5.0),
            ParamSpec("fs", "float", 500.0, "sampling rate (Hz)", minimum=50.0, maximum=20000.0),
            ParamSpec("seed", "int", 0, "random seed (same seed, same signal)", minimum=0),
            ParamSpec("speed", "float", 1.0, "pace (1 = real time)", minimum=0.01, maximum=10000.0),
            ParamSpec("leads", "leads", None, "leads to stream, by name (default: the 12 standard leads)"),
        ),
        lead_off="not reported",
    )

    def __init__(self, url: DeviceUrl) -> None:
        super().__init__(url)
        self.config = self._config()
        wanted = self.params.get("leads") or STANDARD_LEADS
        rows = []
        for name in wanted:
            idx = find_lead(STANDARD_LEADS, name)
            if idx is None:
                raise ConfigError(f"{url.text}: no lead {name!r} in the synthetic 12 leads")
            rows.append(idx)
        self._rows = np.asarray(rows, dtype=np.intp)
        self._leads = tuple(STANDARD_LEADS[i] for i in rows)
        self._stream: Any = None

    def _config(self) -> Any:
        from ..synth import NoiseConfig, SynthConfig

        p = self.params
        try:
            noise = NoiseConfig(baseline_mv=p["wander"], mains_mv=p["mains"], mains_hz=p["mains_hz"],
                                emg_mv=p["noise"])
            return SynthConfig(hr_bpm=p["hr"], rhythm=p["rhythm"], axis_deg=p["axis"], noise=noise, fs=p["fs"],
                               seed=p["seed"])
        except ConfigError as exc:
            raise ConfigError(f"{self.url.text}: {exc}") from None

    @property
    def info(self) -> DeviceInfo:
        return DeviceInfo(kind="synthetic", url=self.url.text, source="generator", leads=self._leads,
                          fs=float(self.config.fs), extra={"speed": self.speed, "synth": self.config.to_dict()})

    def open(self) -> None:
        self._opened = True

    def start(self) -> None:
        from ..synth import SynthStream

        self._stream = SynthStream(self.config)
        super().start()

    def close(self) -> None:
        self._opened = False
        self._started = False

    def _produce(self, start: int, n: int) -> np.ndarray:
        assert self._stream is not None and self._stream.sample_index == start
        return self._stream.read(n)[self._rows].T
