"""Optimization profiles from the manifest: per-input profiles, the fallback from dynamic axes, validation."""

from __future__ import annotations

import pytest

from uniecg_edge.errors import ConfigError
from uniecg_edge.export.trt.profiles import (
    DEFAULT_MAX_CONTEXT,
    ProfileLimits,
    ShapeRange,
    fallback_range,
    graph_profile,
    network_input_range,
    profile_to_dict,
)

LIMITS = ProfileLimits(max_batch=4, opt_batch=1, max_seq=512, opt_seq=32, max_past=512, opt_past=100)

DECODER_INPUTS = [
    {"name": "inputs_embeds", "dtype": "float32", "shape": ["batch", "seq", 64]},
    {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "total_seq"]},
    {"name": "position_ids", "dtype": "int64", "shape": ["batch", "seq"]},
    {"name": "past_key_values.0.key", "dtype": "float32", "shape": ["batch", 2, "past_seq", 16]},
]


def test_fallback_ranges_follow_axis_roles() -> None:
    profile = graph_profile("decoder", DECODER_INPUTS, {}, LIMITS)
    assert profile["inputs_embeds"] == ShapeRange((1, 1, 64), (1, 32, 64), (4, 512, 64))
    assert profile["past_key_values.0.key"] == ShapeRange((1, 2, 0, 16), (1, 2, 100, 16), (4, 2, 512, 16))
    assert profile["position_ids"].max == (4, 512)


def test_total_axis_is_seq_plus_past_at_every_point() -> None:
    profile = graph_profile("decoder", DECODER_INPUTS, {}, LIMITS)
    seq = profile["inputs_embeds"]
    past = profile["past_key_values.0.key"]
    mask = profile["attention_mask"]
    for point in ("min", "opt", "max"):
        assert getattr(mask, point)[1] == getattr(seq, point)[1] + getattr(past, point)[2]


def test_prefill_with_empty_past_is_inside_the_profile() -> None:
    past = graph_profile("decoder", DECODER_INPUTS, {}, LIMITS)["past_key_values.0.key"]
    assert past.min[2] == 0


def test_manifest_profile_wins_over_the_fallback() -> None:
    manifest_profile = {"inputs_embeds": {"min": [1, 1, 64], "opt": [2, 128, 64], "max": [8, 2048, 64]}}
    profile = graph_profile("decoder", DECODER_INPUTS, manifest_profile, LIMITS)
    assert profile["inputs_embeds"] == ShapeRange((1, 1, 64), (2, 128, 64), (8, 2048, 64))
    # the other inputs come from the fallback, with the batch and seq ranges the manifest gave inputs_embeds
    assert profile["position_ids"] == ShapeRange((1, 1), (2, 128), (8, 2048))
    assert profile["past_key_values.0.key"] == ShapeRange((1, 2, 0, 16), (2, 2, 100, 16), (8, 2, 512, 16))
    assert profile["attention_mask"] == ShapeRange((1, 1), (2, 128 + 100), (8, 2048 + 512))


def test_one_axis_name_ranged_two_ways_is_refused() -> None:
    manifest_profile = {"inputs_embeds": {"min": [1, 1, 64], "opt": [1, 8, 64], "max": [4, 64, 64]},
                        "position_ids": {"min": [1, 1], "opt": [1, 8], "max": [4, 32]}}
    with pytest.raises(ConfigError, match="axis 'seq' is \\[1, 8, 64\\] in the profile of inputs_embeds"):
        graph_profile("decoder", DECODER_INPUTS, manifest_profile, LIMITS)


def test_profile_without_inputs_list_is_taken_as_is() -> None:
    profile = graph_profile("unet", [], {"latent": {"min": [1, 4, 128], "opt": [1, 4, 128], "max": [2, 4, 128]}},
                            LIMITS)
    assert profile_to_dict(profile) == {"latent": {"min": [1, 4, 128], "opt": [1, 4, 128], "max": [2, 4, 128]}}


@pytest.mark.parametrize(("entry", "message"), [
    ({"min": [1, 1, 64], "opt": [1, 1, 64]}, "needs 'min', 'opt' and 'max'"),
    ({"min": [2, 1, 64], "opt": [1, 1, 64], "max": [4, 8, 64]}, "0 <= min <= opt <= max"),
    ({"min": [1, 1], "opt": [1, 1], "max": [4, 8]}, "profile rank 2 but the input has rank 3"),
    ({"min": [1, 1, 32], "opt": [1, 1, 64], "max": [4, 8, 64]}, "fixed at 64"),
    ({"min": [1, 1, 64], "opt": [1, 1.5, 64], "max": [4, 8, 64]}, "list of integers"),
])
def test_bad_manifest_profiles_are_refused(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        graph_profile("decoder", DECODER_INPUTS[:1], {"inputs_embeds": entry}, LIMITS)


def test_profile_for_an_unknown_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown input"):
        graph_profile("decoder", DECODER_INPUTS, {"input_ids": {"min": [1], "opt": [1], "max": [1]}}, LIMITS)


def test_dynamic_axis_of_unknown_role_needs_a_manifest_profile() -> None:
    with pytest.raises(ConfigError, match="'s0' has no known role"):
        fallback_range("unet", "latent", ["s0", 4, 128], LIMITS)


def test_limits_from_config_cover_embeddings_prompt_and_new_tokens() -> None:
    limits = ProfileLimits.from_config({"num_ecg_embeddings": 50, "max_new_tokens": 128}, max_batch=2)
    assert limits.max_seq == limits.max_past == 448  # 50 + 256 + 128 = 434, rounded up to a multiple of 64
    assert limits.max_batch == 2
    assert ProfileLimits.from_config({}).max_seq == DEFAULT_MAX_CONTEXT
    assert ProfileLimits.from_config({"num_ecg_embeddings": 50, "max_new_tokens": 128}, max_context=40).max_past == 40


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ConfigError, match="batch range"):
        ProfileLimits(max_batch=2, opt_batch=3)
    with pytest.raises(ConfigError, match="max context"):
        ProfileLimits.from_config({}, max_context=0)


# ---- against the shapes the ONNX parser reports (-1 = dynamic) -----------------------------------------------

def test_network_input_range_checks_the_parsed_network() -> None:
    profile = graph_profile("decoder", DECODER_INPUTS, {}, LIMITS)
    assert network_input_range("decoder", "inputs_embeds", [-1, -1, 64], profile) == profile["inputs_embeds"]
    assert network_input_range("decoder", "sex", [1, 1, 1], profile) is None  # static, no profile needed
    with pytest.raises(ConfigError, match="dynamic shape .* but no profile"):
        network_input_range("decoder", "hr", [-1, 1, 1], profile)
    with pytest.raises(ConfigError, match="fixed at 32"):
        network_input_range("decoder", "inputs_embeds", [-1, -1, 32], profile)
