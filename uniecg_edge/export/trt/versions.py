"""Which TensorRT build mode a graph gets: weak typing with precision flags, or a strongly typed network.

TensorRT changed how precision is chosen between major versions, and Jetson boards pin the version through
JetPack, so the builder dispatches on the parsed ``tensorrt.__version__`` (a pure function, tested without
TensorRT):

=================  ===========================  ================================================================
TensorRT           where                        how a lower precision is obtained
=================  ===========================  ================================================================
< 10.0             JetPack 5 and older          refused (the 10.x Python API is required)
10.0 - 10.11       JetPack 6 (10.3), CUDA 12.8  **weak typing**: ``BuilderFlag.FP16``; ``--int8`` sets
                   (10.7)                       ``BuilderFlag.INT8`` + ``FP16`` and needs a Q/DQ graph
                                                (``int8_calibrator`` is deprecated since 10.1 and not used)
10.12 - 10.x       CUDA 12.9 (10.13),           **strong typing preferred** (weak typing is deprecated since
                   JetPack 7 (10.16)            10.12): ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` when
                                                the graph already holds the precision (fp16 ONNX, Q/DQ ONNX);
                                                otherwise weak typing with the flags above and a warning
>= 11.0            TensorRT 11 (JetPack 7.2+)   **strong typing only**: ``BuilderFlag.FP16/INT8`` no longer
                                                exist; the graph's own types decide, so ``--fp16`` needs an
                                                fp16 bundle and ``--int8`` a Q/DQ bundle, else a clear error
=================  ===========================  ================================================================

The requested precision is the lowest one the builder may use: ``fp32`` (default), ``fp16``, or ``int8``
(int8 where the graph has Q/DQ nodes, fp16 elsewhere, as ``trtexec --int8 --fp16``). A graph without Q/DQ nodes
is built at fp16 under ``--int8`` (logged). With strong typing the engine's precision is the graph's own; with
weak typing it is the lower of the request and the graph's. That effective precision names the engine.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ...errors import BackendUnavailableError, InputError

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")  # from widest to narrowest
_RANK = {name: rank for rank, name in enumerate(PRECISIONS)}

# quantization kinds of a graph (see .graphs.quantization_kind); the first three cannot be parsed by TensorRT
UNPARSABLE_QUANTIZATION: dict[str, str] = {
    "dynamic": "dynamic int8 operators (MatMulInteger / DynamicQuantizeLinear) that TensorRT cannot parse; "
    "export with static Q/DQ int8 or fp16 for TensorRT",
    "weight-only": "onnxruntime weight-only operators (MatMulNBits / GatherBlockQuantized) that TensorRT cannot "
    "parse; export an fp16 or Q/DQ int8 bundle for TensorRT",
    "contrib": "onnxruntime contrib operators (com.microsoft domain) that TensorRT cannot parse",
}

# precision -> the weakly typed builder flags that allow it (names of tensorrt.BuilderFlag members)
WEAK_TYPING_FLAGS: dict[str, tuple[str, ...]] = {"fp32": (), "fp16": ("FP16",), "int8": ("FP16", "INT8")}


class TypingPolicy(enum.Enum):
    WEAK = "weak typing (precision builder flags)"
    PREFER_STRONG = "strong typing preferred (weak typing deprecated since 10.12)"
    STRONG_ONLY = "strong typing only (no precision builder flags)"


@dataclass(frozen=True, order=True)
class TrtVersion:
    """A parsed ``tensorrt.__version__`` such as ``10.3.0.30``; compares numerically."""

    major: int
    minor: int
    patch: int = 0
    build: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
        if match is None:
            raise BackendUnavailableError(f"cannot read the TensorRT version {text!r}")
        parts = [int(p) if p is not None else 0 for p in match.groups()]
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}.{self.build}"


MIN_SUPPORTED = TrtVersion(10, 0)
# (first version, policy), newest first: the first row whose version is <= the installed one applies
_POLICY_TABLE: tuple[tuple[TrtVersion, TypingPolicy], ...] = (
    (TrtVersion(11, 0), TypingPolicy.STRONG_ONLY),
    (TrtVersion(10, 12), TypingPolicy.PREFER_STRONG),
    (MIN_SUPPORTED, TypingPolicy.WEAK),
)


def typing_policy(version: TrtVersion) -> TypingPolicy:
    """The build mode that a TensorRT version supports or prefers (table in the module docstring)."""
    for first, policy in _POLICY_TABLE:
        if version >= first:
            return policy
    raise BackendUnavailableError(
        f"TensorRT {version} is too old: build-engines needs TensorRT >= {MIN_SUPPORTED.major}.{MIN_SUPPORTED.minor} "
        "(JetPack 6 ships 10.3)"
    )


@dataclass(frozen=True)
class GraphPrecision:
    """What a bundle graph holds: the manifest's precision and the quantization kind found in its operators."""

    name: str
    manifest_precision: str  # fp32 | fp16 | int8 | int4
    quantization: str  # none | qdq | dynamic | weight-only | contrib | unknown (onnx not installed)


@dataclass(frozen=True)
class BuildPlan:
    """How to build one graph: effective precision, typing, flags (by TensorRT enum member name), notes to log."""

    graph: str
    precision: str
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    policy: TypingPolicy
    notes: tuple[str, ...] = ()


def graph_level(graph: GraphPrecision) -> tuple[str, tuple[str, ...]]:
    """The precision a graph's own types carry (fp32, fp16 or int8 = Q/DQ) and notes; refuses unparsable graphs."""
    if graph.quantization in UNPARSABLE_QUANTIZATION:
        raise InputError(f"graph {graph.name} has {UNPARSABLE_QUANTIZATION[graph.quantization]}")
    if graph.quantization == "qdq":
        return "int8", ()
    if graph.quantization == "unknown":
        if graph.manifest_precision == "int4":
            raise InputError(f"graph {graph.name} is int4 (MatMulNBits), which TensorRT cannot parse; "
                             "export an fp16 or Q/DQ int8 bundle for TensorRT")
        if graph.manifest_precision == "int8":
            return "int8", (f"graph {graph.name}: onnx is not installed, so its Q/DQ nodes were not checked; "
                            "assuming a Q/DQ int8 graph as the manifest says",)
        return _known_float(graph), ()
    notes: tuple[str, ...] = ()
    if graph.manifest_precision in ("int8", "int4"):
        notes = (f"graph {graph.name}: the manifest says {graph.manifest_precision} but it has no quantization "
                 "operators; treating it as a float graph",)
    return _known_float(graph), notes


def _known_float(graph: GraphPrecision) -> str:
    return "fp16" if graph.manifest_precision == "fp16" else "fp32"


def plan_build(version: TrtVersion, requested: str, graph: GraphPrecision) -> BuildPlan:
    """Choose typing, flags and the effective precision of one graph's engine (rules in the module docstring)."""
    if requested not in _RANK:
        raise InputError(f"unknown precision {requested!r} (known: {', '.join(PRECISIONS)})")
    policy = typing_policy(version)
    level, notes = graph_level(graph)
    target = requested
    if requested == "int8" and level != "int8":
        target = "fp16"
        notes += (f"graph {graph.name} has no Q/DQ nodes: --int8 builds it at fp16",)
    graph_is_low_enough = _RANK[level] >= _RANK[target]
    if policy is TypingPolicy.STRONG_ONLY and not graph_is_low_enough:
        raise InputError(
            f"TensorRT {version} builds strongly typed networks only and graph {graph.name} is {level}: "
            f"for a {target} engine export the bundle at {target} (uniecg-edge export --{target}, or "
            "modelopt.onnx.autocast), or build without --fp16/--int8"
        )
    strong = policy is TypingPolicy.STRONG_ONLY or (policy is TypingPolicy.PREFER_STRONG and graph_is_low_enough)
    if strong:
        return BuildPlan(graph.name, level, True, ("STRONGLY_TYPED",), (), policy, notes)
    if policy is TypingPolicy.PREFER_STRONG:
        notes += (f"graph {graph.name} is {level}: building it weakly typed with the {target} flag, which TensorRT "
                  f"{version} deprecates (export a {target} bundle to build it strongly typed)",)
    precision = PRECISIONS[max(_RANK[target], _RANK[level])]
    return BuildPlan(graph.name, precision, False, (), WEAK_TYPING_FLAGS[precision], policy, notes)
