"""Build TensorRT engines for a bundle's graphs with the ``tensorrt`` Python API (issue 4, item 5).

``tensorrt`` is imported only inside :func:`build_engines`; without it the command fails with one line
(``BackendUnavailableError``). Per graph: verify the bundle, plan typing and flags for the installed TensorRT
(:mod:`.versions`), derive the optimization profile (:mod:`.profiles`), reuse a cached engine with the same key
(:mod:`.cache`) or build one::

    trt.Builder(logger) -> create_network(flags) -> trt.OnnxParser(network, logger).parse_from_file(onnx)
    -> create_builder_config(): workspace limit, precision flags (weak typing only), timing cache
    -> create_optimization_profile() + set_shape(min, opt, max) per dynamic input -> add_optimization_profile
    -> build_serialized_network(network, config) -> engines/<key>/<graph>.plan + engine.json

``parse_from_file`` reads external data (``decoder.onnx.data``) from the folder of the .onnx file. This path has
not run on a GPU yet: its logic is tested with a recording stand-in for ``tensorrt`` and type-checked against
``tensorrt-stubs``; the real build is for a machine with TensorRT (Jetson: JetPack's python3-libnvinfer).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ... import __version__
from ...errors import BackendUnavailableError, InputError, UniEcgError
from ...registry import Registry
from .cache import cached_engine, engine_key, read_timing_cache, store_engine, timing_cache_path, write_timing_cache
from .gpu import GpuInfo, detect_gpu
from .graphs import BundleGraph, bundle_graphs, graph_precision
from .profiles import ProfileLimits, ShapeRange, graph_profile, network_input_range, profile_to_dict
from .versions import BuildPlan, TrtVersion, plan_build, typing_policy

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

TRT_MISSING = ("TensorRT is not installed: on Jetson use JetPack's python3-libnvinfer (venv with "
               "--system-site-packages); on x86 NVIDIA's tensorrt wheels")


class EngineBuildError(UniEcgError):
    """TensorRT could not parse a graph or build its engine."""


@dataclass(frozen=True)
class BuildOptions:
    """What ``build-engines`` was asked for (saved in engine.json)."""

    precision: str = "fp32"
    graphs: tuple[str, ...] | None = None  # None: every graph of the manifest
    max_batch: int = 4
    max_context: int | None = None  # None: from config.json (see ProfileLimits.from_config)
    workspace_mib: int = 2048
    force: bool = False

    def __post_init__(self) -> None:
        if self.workspace_mib < 1:
            raise InputError(f"workspace {self.workspace_mib} MiB must be >= 1")
        if self.max_batch < 1:
            raise InputError(f"max batch {self.max_batch} must be >= 1")


@dataclass(frozen=True)
class EngineResult:
    graph: str
    key: str
    plan: Path
    precision: str
    strongly_typed: bool
    cache_hit: bool
    build_s: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plan"] = str(self.plan)
        return data


class ParserErrorFacts(NamedTuple):
    desc: str
    node: int | None = None
    node_name: str | None = None
    node_operator: str | None = None
    code: str | None = None


def parser_error_line(onnx_name: str, errors: Sequence[ParserErrorFacts]) -> str:
    """One line for a failed ``parse_from_file``: the first error, where it happened, and how many more."""
    if not errors:
        return f"TensorRT could not parse {onnx_name} (no parser error was recorded)"
    first = errors[0]
    where = [f"node {first.node}" if first.node is not None and first.node >= 0 else "",
             repr(first.node_name) if first.node_name else "",
             f"op {first.node_operator}" if first.node_operator else "",
             first.code or ""]
    located = ", ".join(w for w in where if w)
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    desc = " ".join(first.desc.split())
    return f"TensorRT could not parse {onnx_name}: {desc}" + (f" [{located}]" if located else "") + more


def require_tensorrt() -> str:
    """Import ``tensorrt`` and return its version; ``BackendUnavailableError`` (one line) when it is missing."""
    try:
        import tensorrt
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("tensorrt", "tensorrt_bindings", "tensorrt_libs"):
            raise BackendUnavailableError(TRT_MISSING) from None
        raise BackendUnavailableError(f"TensorRT cannot be imported: {exc}") from exc
    except ImportError as exc:  # e.g. "libnvonnxparser.so.11: cannot open shared object file"
        raise BackendUnavailableError(f"TensorRT is installed but cannot be loaded: {exc}") from exc
    if not hasattr(tensorrt, "Builder"):  # the tensorrt-stubs package alone makes `tensorrt` a namespace package
        raise BackendUnavailableError(f"{TRT_MISSING} (only type stubs were found)")
    return str(tensorrt.__version__)


# ---- the bundle -------------------------------------------------------------------------------------------------

def verified_bundle(bundle_dir: Path) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The manifest and config.json of a bundle whose files match their checksums (``BundleError`` otherwise)."""
    from ..bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    return bundle.manifest, bundle.config


# ---- TensorRT enums by name (looked up only when a plan asks for them: TRT 11 has no BuilderFlag.FP16) -----------

BUILDER_FLAGS: Registry[Callable[[Any], trt.BuilderFlag]] = Registry("TensorRT builder flag")
BUILDER_FLAGS.add("FP16", lambda t: t.BuilderFlag.FP16)
BUILDER_FLAGS.add("INT8", lambda t: t.BuilderFlag.INT8)
NETWORK_FLAGS: Registry[Callable[[Any], trt.NetworkDefinitionCreationFlag]] = Registry("TensorRT network flag")
NETWORK_FLAGS.add("STRONGLY_TYPED", lambda t: t.NetworkDefinitionCreationFlag.STRONGLY_TYPED)

_SEVERITY_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG}


def _logging_bridge() -> trt.ILogger:
    """A ``trt.ILogger`` that forwards TensorRT's messages to this module's logger."""
    import tensorrt as trt

    class LoggingBridge(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            level = _SEVERITY_LEVELS.get(int(severity), logging.INFO)
            if log.isEnabledFor(level):
                log.log(level, "TensorRT: %s", msg)

    return LoggingBridge()


def _parser_errors(parser: trt.OnnxParser) -> list[ParserErrorFacts]:
    facts = []
    for index in range(parser.num_errors):
        err = parser.get_error(index)
        node_name = getattr(err, "node_name", None)  # node_name / node_operator are newer than TensorRT 10.0
        node_operator = getattr(err, "node_operator", None)
        facts.append(ParserErrorFacts(
            desc=str(err.desc()),
            node=int(err.node()),
            node_name=str(node_name()) if callable(node_name) else None,
            node_operator=str(node_operator()) if callable(node_operator) else None,
            code=str(err.code()),
        ))
    return facts


def _apply_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    serialized = read_timing_cache(path)
    cache = config.create_timing_cache(serialized)
    if not config.set_timing_cache(cache, False):  # ignore_mismatch=False: refuse another device's cache
        log.warning("timing cache %s does not fit this device or TensorRT; starting a new one", path.name)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _set_profile(builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig,
                 graph: str, profile: Mapping[str, ShapeRange]) -> None:
    import tensorrt as trt

    optimization_profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if tensor.is_shape_tensor:
            raise EngineBuildError(f"graph {graph} input {tensor.name} is a shape tensor, which build-engines "
                                   "does not support")
        shape = tensor.shape
        rng = network_input_range(graph, tensor.name, [int(shape[axis]) for axis in range(len(shape))], profile)
        if rng is not None:
            optimization_profile.set_shape(tensor.name, trt.Dims(list(rng.min)), trt.Dims(list(rng.opt)),
                                           trt.Dims(list(rng.max)))
    if config.add_optimization_profile(optimization_profile) < 0:
        raise EngineBuildError(f"TensorRT refused the optimization profile of graph {graph}")


def build_serialized_engine(onnx_path: Path, graph: str, plan: BuildPlan, profile: Mapping[str, ShapeRange],
                            workspace_bytes: int, timing_path: Path) -> bytes:
    """Parse one ONNX file and build its serialized engine; updates the timing cache file."""
    import tensorrt as trt

    logger = _logging_bridge()
    builder = trt.Builder(logger)
    network_flags = 0
    for name in plan.network_flags:
        network_flags |= 1 << int(NETWORK_FLAGS.get(name)(trt))
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineBuildError(parser_error_line(onnx_path.name, _parser_errors(parser)))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    for name in plan.builder_flags:
        config.set_flag(BUILDER_FLAGS.get(name)(trt))
    _apply_timing_cache(config, timing_path)
    _set_profile(builder, network, config, graph, profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine for graph {graph} (see the TensorRT log; "
                               "run with --log-level INFO)")
    write_timing_cache(timing_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


# ---- the command's work -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    graph: BundleGraph
    plan: BuildPlan
    key: str
    profile: dict[str, ShapeRange]


def build_engines(bundle_dir: Path, options: BuildOptions | None = None, gpu: GpuInfo | None = None
                  ) -> list[EngineResult]:
    """Build (or reuse) one TensorRT engine per bundle graph for this GPU; see the module docstring.

    Every graph is planned (typing, flags, profile, key) before the first build, so a bundle that cannot be
    built for this TensorRT fails at once rather than after minutes of building.
    """
    options = options or BuildOptions()
    bundle_dir = Path(bundle_dir)
    version_text = require_tensorrt()
    version = TrtVersion.parse(version_text)
    policy = typing_policy(version)
    manifest, config = verified_bundle(bundle_dir)
    gpu = gpu or detect_gpu()
    limits = ProfileLimits.from_config(config, max_batch=options.max_batch, max_context=options.max_context)
    log.info("TensorRT %s (%s) on %s sm%s", version_text, policy.value, gpu.name, gpu.sm)

    jobs = []
    for graph in bundle_graphs(bundle_dir, manifest, options.graphs):
        plan = plan_build(version, options.precision, graph_precision(graph))
        profile = graph_profile(graph.name, graph.inputs, graph.profile, limits)
        jobs.append(_Job(graph, plan, engine_key(gpu, version_text, graph.digest, plan.precision), profile))

    results = []
    for job in jobs:
        for note in job.plan.notes:
            log.warning("%s", note)
        profile_dict = profile_to_dict(job.profile)
        hit = None if options.force else cached_engine(bundle_dir, job.key, job.graph.name, profile_dict)
        plan_path = bundle_dir / "engines" / job.key / f"{job.graph.name}.plan"
        if hit is not None:
            log.info("engine cache hit: %s", plan_path.relative_to(bundle_dir))
            results.append(EngineResult(job.graph.name, job.key, plan_path, job.plan.precision,
                                        job.plan.strongly_typed, True, hit.get("build_s"), job.plan.notes))
            continue
        timing_path = timing_cache_path(bundle_dir, gpu, version_text, job.plan.precision)
        log.info("building %s (%s, %s)", job.graph.name, job.plan.precision,
                 "strongly typed" if job.plan.strongly_typed else f"flags {list(job.plan.builder_flags)}")
        started = time.perf_counter()
        engine = build_serialized_engine(job.graph.path, job.graph.name, job.plan, job.profile,
                                         options.workspace_mib << 20, timing_path)
        build_s = round(time.perf_counter() - started, 3)
        key_facts = {"gpu": gpu.to_dict(), "tensorrt_version": version_text, "precision": job.plan.precision,
                     "package_version": __version__}
        graph_facts = {
            "onnx": job.graph.path.name, "graph_sha256": job.graph.digest,
            "typing": "strong" if job.plan.strongly_typed else "weak", "policy": job.plan.policy.name,
            "network_flags": list(job.plan.network_flags), "builder_flags": list(job.plan.builder_flags),
            "profile": profile_dict, "limits": limits.to_dict(), "workspace_bytes": options.workspace_mib << 20,
            "timing_cache": timing_path.name, "build_s": build_s,
            "built_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        written = store_engine(bundle_dir, job.key, job.graph.name, engine, key_facts, graph_facts)
        log.info("built %s in %.1f s (%d bytes)", written.relative_to(bundle_dir), build_s, len(engine))
        results.append(EngineResult(job.graph.name, job.key, written, job.plan.precision, job.plan.strongly_typed,
                                    False, build_s, job.plan.notes))
    return results
