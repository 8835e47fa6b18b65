"""TensorRT version dispatch: parsing, the typing-policy table, and the per-graph build plan (no TensorRT needed)."""

from __future__ import annotations

import pytest

from uniecg_edge.errors import BackendUnavailableError, InputError
from uniecg_edge.export.trt.versions import GraphPrecision, TrtVersion, TypingPolicy, plan_build, typing_policy

JETPACK6 = TrtVersion.parse("10.3.0.30")  # JetPack 6.1 / 6.2
CUDA129 = TrtVersion.parse("10.13.0.35")
TRT11 = TrtVersion.parse("11.4.0.106")


def graph(precision: str = "fp32", quantization: str = "none", name: str = "decoder") -> GraphPrecision:
    return GraphPrecision(name, precision, quantization)


@pytest.mark.parametrize(("text", "parts"), [
    ("10.3.0.30", (10, 3, 0, 30)),
    ("11.4.0.106", (11, 4, 0, 106)),
    ("10.13.0", (10, 13, 0, 0)),
    ("8.6.1.post1", (8, 6, 1, 0)),
])
def test_version_parse(text: str, parts: tuple[int, ...]) -> None:
    version = TrtVersion.parse(text)
    assert (version.major, version.minor, version.patch, version.build) == parts


def test_version_parse_refuses_garbage() -> None:
    with pytest.raises(BackendUnavailableError, match="cannot read the TensorRT version"):
        TrtVersion.parse("unknown")


def test_versions_compare_numerically() -> None:
    assert TrtVersion.parse("10.12.0") > TrtVersion.parse("10.3.0.30")  # not as strings
    assert TrtVersion.parse("11.0") > TrtVersion.parse("10.16.1.1")


@pytest.mark.parametrize(("text", "policy"), [
    ("10.0.0.6", TypingPolicy.WEAK),
    ("10.3.0.30", TypingPolicy.WEAK),
    ("10.11.9.9", TypingPolicy.WEAK),
    ("10.12.0.36", TypingPolicy.PREFER_STRONG),
    ("10.16.1.11", TypingPolicy.PREFER_STRONG),
    ("11.0.0.1", TypingPolicy.STRONG_ONLY),
    ("12.1.0", TypingPolicy.STRONG_ONLY),
])
def test_typing_policy_table(text: str, policy: TypingPolicy) -> None:
    assert typing_policy(TrtVersion.parse(text)) is policy


def test_too_old_tensorrt_is_refused() -> None:
    with pytest.raises(BackendUnavailableError, match="too old"):
        typing_policy(TrtVersion.parse("8.6.1"))


# ---- TensorRT 10.0-10.11 (JetPack 6): weak typing, precision flags -------------------------------------------

@pytest.mark.parametrize(("requested", "precision", "flags"), [
    ("fp32", "fp32", ()),
    ("fp16", "fp16", ("FP16",)),
])
def test_weak_typing_flags_on_fp32_graph(requested: str, precision: str, flags: tuple[str, ...]) -> None:
    plan = plan_build(JETPACK6, requested, graph("fp32"))
    assert not plan.strongly_typed and plan.network_flags == ()
    assert (plan.precision, plan.builder_flags) == (precision, flags)


def test_weak_typing_int8_needs_qdq_and_sets_int8_with_fp16() -> None:
    plan = plan_build(JETPACK6, "int8", graph("int8", "qdq"))
    assert plan.precision == "int8" and set(plan.builder_flags) == {"FP16", "INT8"}
    fallback = plan_build(JETPACK6, "int8", graph("fp32"))
    assert fallback.precision == "fp16" and fallback.builder_flags == ("FP16",)
    assert any("no Q/DQ nodes" in note for note in fallback.notes)


def test_weak_typing_keeps_a_lower_precision_graph_low() -> None:
    # an fp16 graph built without --fp16 still needs the FP16 flag under weak typing
    assert plan_build(JETPACK6, "fp32", graph("fp16")).builder_flags == ("FP16",)
    assert plan_build(JETPACK6, "fp32", graph("int8", "qdq")).precision == "int8"


# ---- TensorRT 10.12-10.x: strong typing when the graph already holds the precision ---------------------------

def test_prefer_strong_uses_strong_typing_for_precast_graphs() -> None:
    for requested, g, precision in (("fp16", graph("fp16"), "fp16"), ("int8", graph("int8", "qdq"), "int8"),
                                    ("fp32", graph("fp32"), "fp32")):
        plan = plan_build(CUDA129, requested, g)
        assert plan.strongly_typed and plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()
        assert plan.precision == precision


def test_prefer_strong_falls_back_to_weak_typing_with_a_warning() -> None:
    plan = plan_build(CUDA129, "fp16", graph("fp32"))
    assert not plan.strongly_typed and plan.builder_flags == ("FP16",)
    assert any("deprecates" in note for note in plan.notes)


# ---- TensorRT 11: strong typing only -------------------------------------------------------------------------

def test_trt11_never_sets_precision_flags() -> None:
    for requested, g in (("fp32", graph("fp32")), ("fp16", graph("fp16")), ("int8", graph("int8", "qdq")),
                         ("fp32", graph("fp16"))):
        plan = plan_build(TRT11, requested, g)
        assert plan.strongly_typed and plan.builder_flags == () and plan.network_flags == ("STRONGLY_TYPED",)
    assert plan_build(TRT11, "fp32", graph("fp16")).precision == "fp16"  # the graph's types decide


@pytest.mark.parametrize(("requested", "g"), [("fp16", graph("fp32")), ("int8", graph("fp32"))])
def test_trt11_refuses_a_request_the_graph_cannot_carry(requested: str, g: GraphPrecision) -> None:
    with pytest.raises(InputError, match="strongly typed networks only.*graph decoder is fp32"):
        plan_build(TRT11, requested, g)


def test_trt11_int8_on_fp16_graph_without_qdq_builds_fp16() -> None:
    plan = plan_build(TRT11, "int8", graph("fp16"))
    assert plan.precision == "fp16" and plan.strongly_typed


# ---- graphs TensorRT cannot parse ----------------------------------------------------------------------------

@pytest.mark.parametrize(("quantization", "needle"), [
    ("dynamic", "MatMulInteger"), ("weight-only", "MatMulNBits"), ("contrib", "com.microsoft")])
def test_unparsable_quantization_is_refused_by_name(quantization: str, needle: str) -> None:
    for version in (JETPACK6, TRT11):
        with pytest.raises(InputError, match=needle):
            plan_build(version, "fp32", graph("int8", quantization))


def test_manifest_precision_when_onnx_cannot_be_inspected() -> None:
    plan = plan_build(JETPACK6, "int8", graph("int8", "unknown"))
    assert plan.precision == "int8" and any("not checked" in n for n in plan.notes)
    with pytest.raises(InputError, match="int4"):
        plan_build(JETPACK6, "fp16", graph("int4", "unknown"))


def test_manifest_int8_without_quantization_ops_is_a_float_graph() -> None:
    plan = plan_build(JETPACK6, "fp32", graph("int8", "none"))
    assert plan.precision == "fp32" and any("no quantization operators" in n for n in plan.notes)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(InputError, match="unknown precision"):
        plan_build(JETPACK6, "bf16", graph())
