"""Device URLs: targets, typed parameters with defaults, and usage errors that list the valid parameters."""

from __future__ import annotations

import pytest

from uniecg_edge.devices import DEVICES, device_from_url, device_specs
from uniecg_edge.devices.url import ParamSpec, parse_device_url
from uniecg_edge.errors import ConfigError, ExitCode

SPECS = (
    ParamSpec("gain", "int", 24, "gain", choices=(1, 2, 24)),
    ParamSpec("speed", "float", 1.0, "speed", minimum=0.1, maximum=10.0),
    ParamSpec("loop", "bool", False, "loop"),
    ParamSpec("leads", "leads", ("I", "II"), "leads"),
)


@pytest.mark.parametrize(("url", "target"), [
    ("openbci:///dev/ttyUSB0", "/dev/ttyUSB0"),
    ("playback://data/ecg/100.hea?speed=2", "data/ecg/100.hea"),
    ("playback:///abs/path%20with%20space.hea", "/abs/path with space.hea"),
    ("synthetic://?speed=2", ""),
])
def test_targets(url, target):
    assert parse_device_url(url, SPECS).target == target


def test_defaults_and_typed_values():
    parsed = parse_device_url("x:///p?gain=2&speed=2.5&loop=yes&leads=avr,V1,-", SPECS)
    assert parsed.params == {"gain": 2, "speed": 2.5, "loop": True, "leads": ("aVR", "V1", "-")}
    assert parse_device_url("x:///p", SPECS).params == {"gain": 24, "speed": 1.0, "loop": False, "leads": ("I", "II")}


@pytest.mark.parametrize(("query", "message"), [
    ("gain=3", "allowed: 1, 2, 24"),
    ("gain=two", "bad value gain='two'"),
    ("speed=50", "allowed range 0.1 to 10"),
    ("speed=nan", "not a finite number"),
    ("loop=maybe", "expected 1/0"),
    ("leads=I,,II", "lead names"),
    ("leads=-,-", "every channel is unused"),
    ("colour=red", "unknown parameter 'colour' for x:// (valid: gain, leads, loop, speed)"),
    ("gain=2&gain=24", "given twice"),
    ("gain", "malformed parameter 'gain'"),
])
def test_usage_errors(query, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        parse_device_url(f"x:///p?{query}", SPECS)
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(info.value)


def test_every_kind_is_registered_and_declares_itself():
    kinds = [spec.kind for spec in device_specs()]
    assert kinds == sorted(DEVICES) == ["ad8232", "ads1292r", "hackeeg", "olimex", "openbci", "openbci-daisy",
                                        "playback", "synthetic"]
    for spec in device_specs():
        assert spec.description and spec.lead_off
        names = [p.name for p in spec.params]
        assert len(names) == len(set(names))


def test_leads_map_channels_by_name_and_skip_unused_ones():
    device = device_from_url("openbci-daisy:///dev/x?leads=I,II,-,V2,V3,V4,V5,V6,V1")
    assert device.info.leads == ("I", "II", "V2", "V3", "V4", "V5", "V6", "V1")
    assert device.info.extra["channel_index"] == [0, 1, 3, 4, 5, 6, 7, 8]
    with pytest.raises(ConfigError, match="leads= names 9 channels but the device has 8"):
        device_from_url("openbci:///dev/x?leads=I,II,III,V1,V2,V3,V4,V5,V6")


def test_unknown_scheme_lists_the_known_kinds():
    with pytest.raises(ConfigError, match="unknown device kind 'serial' \\(known: ad8232, ads1292r, hackeeg"):
        device_from_url("serial:///dev/ttyUSB0")
    with pytest.raises(ConfigError, match="has no scheme"):
        device_from_url("/dev/ttyUSB0")
