"""Lower-precision copies of the exported fp32 ONNX graphs: fp16, int8 (dynamic or static QDQ), int4 weight-only.

=========  ===================================================================================================
precision  what ``quantize_graph`` writes
=========  ===================================================================================================
fp32       the graph as exported (re-saved under the new name)
fp16       ``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)``; the numerically
           sensitive nodes stay fp32 (``fp16.py``: norm statistics, Softmax, phases). For GPUs: on a CPU
           fp16 only halves the files, onnxruntime casts back to fp32 to compute.
int8       without ``calibration``: ``quantize_dynamic`` (int8 weights, activation scales computed per call;
           MatMul/Gemm only, plus the token table's Gather; down-projections fed by an activation product stay
           fp32, see :func:`gated_product_matmuls`) for CPUs. With ``calibration`` (feeds of real ECG
           windows): ``quantize_static`` in QDQ format, symmetric int8 activations and per-channel weights, the
           explicit-quantization form TensorRT builds int8 engines from.
int4       the decoder's MatMuls become ``MatMulNBits`` (4-bit, symmetric, blocks of 32, accuracy level 4) and the
           token table ``GatherBlockQuantized`` (4-bit); every other graph gets int8 dynamic (the returned facts
           say so in ``method`` and ``note``).
=========  ===================================================================================================

Only MatMul/Gemm are given to ``quantize_dynamic``: on dynamo exports at opset 23 it mistakes ONNX ``Attention``
for the contrib op and writes an invalid ``QAttention`` (reference/edge-facts.md §4).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ConfigError, InputError
from ..registry import Registry

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int4")
GRAPH_NAMES = ("ecg_encoder", "embed_tokens", "decoder", "gen_head", "unet_cond", "unet", "vae_decoder")

# ---- parity tolerances ------------------------------------------------------------------------------------------
TOLERANCE_METRIC = "max |onnx - torch fp32| / max |torch fp32| over every output of the graph (relative_max_error)"
# The metric is relative to the reference's largest magnitude, so one number serves graphs whose outputs live on
# different scales (logits, ECG mV, noise estimates). Measured on the default model's graphs with the check records'
# real inputs (max over graphs): fp32 1.5e-6, fp16 2.3e-3 (VAE), int8 1.5e-2 (decoder), int4 8.1e-2 (token table).
# * fp32: only the order of float additions differs from torch (1e-6 also for a 45M Llama, edge-facts §4);
#   1e-4 leaves room for long Conv reductions in the UNet and VAE of larger models.
# * fp16: 11-bit mantissa, ~5e-4 per rounding; 4.3e-4 on a 45M Llama's logits (edge-facts §4). 1e-2 is 4x the
#   worst measured and still catches overflow, NaN, and a rotary phase rounded to fp16 (1-3e-2 at position 1500).
# * int8 dynamic: per-tensor activation scales, one outlier sets the scale; 1.8 % on a 45M Llama's logits
#   (edge-facts §4). Static QDQ (symmetric per-tensor activations, TensorRT's form) measured 5.4e-2 (UNet),
#   2.3e-2 (encoder), 1.9e-2 (decoder). 0.1 is 2-6x those; a zeroed or garbled weight gives errors ~1.
# * int4: 4-bit blocks of 32; 0.075 on the default decoder, 0.20 on a random-init 45M Llama's decode step
#   (hidden 512, vocab 32000; 11 % in edge-facts §4), whose flat weights are the worst case. 0.3; the decisive
#   checks for int4 are the gates (gates.py). Graphs other than the decoder and the token
#   table carry int8 dynamic under int4, hence int8's number for them.
_FP32, _FP16, _INT8, _INT4 = 1e-4, 1e-2, 0.1, 0.3
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {name: _FP32 for name in GRAPH_NAMES},
    "fp16": {name: _FP16 for name in GRAPH_NAMES},
    "int8": {name: _INT8 for name in GRAPH_NAMES},
    "int4": {**{name: _INT8 for name in GRAPH_NAMES}, "decoder": _INT4, "embed_tokens": _INT4},
}


@dataclass(frozen=True)
class QuantJob:
    """One graph to convert: ``src`` (fp32) -> ``dst`` in ``precision``."""

    spec_name: str
    src: Path
    dst: Path
    precision: str
    calibration: list[dict[str, np.ndarray]] | None


QuantMethod = Callable[[QuantJob], dict[str, Any]]
METHODS: Registry[QuantMethod] = Registry("precision")


def relative_max_error(reference: np.ndarray | list[np.ndarray], candidate: np.ndarray | list[np.ndarray]) -> float:
    """``max |candidate - reference| / max |reference|`` over all arrays (the ``TOLERANCES`` metric); inf on NaN."""
    refs = [np.asarray(r, dtype=np.float64) for r in (reference if isinstance(reference, list) else [reference])]
    cands = [np.asarray(c, dtype=np.float64) for c in (candidate if isinstance(candidate, list) else [candidate])]
    if len(refs) != len(cands) or any(r.shape != c.shape for r, c in zip(refs, cands, strict=True)):
        raise ValueError("reference and candidate must hold arrays of the same shapes")
    if any(not np.isfinite(c).all() for c in cands):
        return float("inf")
    scale = max((float(np.max(np.abs(r))) for r in refs if r.size), default=0.0)
    diff = max((float(np.max(np.abs(c - r))) for r, c in zip(refs, cands, strict=True) if r.size), default=0.0)
    return diff / scale if scale > 0 else diff


def quantize_graph(spec_name: str, src: Path, dst: Path, precision: str, *,
                   calibration: Iterable[dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """Write ``dst`` (and ``dst.data`` when ``src`` keeps its weights outside) in ``precision`` from fp32 ``src``.

    Parameters
    ----------
    spec_name : the graph's bundle name (``decoder``, ``unet``, ...): int4 applies to ``decoder`` and
        ``embed_tokens`` only.
    calibration : feeds (input name -> array) from real ECG windows; given with ``int8`` -> static QDQ.

    Returns
    -------
    Manifest facts: ``precision``, ``method``, ``ops`` (the quantized or cast op types, with counts),
    ``excluded`` (what stays fp32), ``size_bytes`` (graph + data file), ``opset``, ``quantized_nodes``, ``note``.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise InputError(f"{src}: no such ONNX graph")
    if src.resolve() == dst.resolve():
        raise InputError(f"{dst}: the quantized graph must not overwrite its fp32 source")
    samples = _check_calibration(src, list(calibration)) if calibration is not None else None
    dst.parent.mkdir(parents=True, exist_ok=True)
    job = QuantJob(spec_name=spec_name, src=src, dst=dst, precision=precision, calibration=samples)
    with _quiet_quantizers():
        facts = METHODS.get(precision)(job)
    facts.setdefault("note", "")
    facts["precision"] = precision
    facts["size_bytes"] = graph_size_bytes(dst)
    facts["opset"] = _opset(dst)
    log.info("%s %s -> %s (%s, %d bytes)", spec_name, precision, dst.name, facts["method"], facts["size_bytes"])
    return facts


# Messages onnxruntime's quantizers log on every call that say nothing about this package's graphs: the
# pre-processing advice (not needed for these exports, edge-facts §4) and the opset-21 notice of the 4-bit token
# table (handled: the table is checked against fp32 and the facts record the new opset).
_NOISE = ("Please consider to run pre-processing before quantization",
          "The opset of the input model is under 21")
_NOISY_LOGGERS = ("", "onnxruntime.quantization.matmul_nbits_quantizer")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_NOISE)


@contextlib.contextmanager
def _quiet_quantizers() -> Iterator[None]:
    loggers = [logging.getLogger(name) if name else logging.getLogger() for name in _NOISY_LOGGERS]
    noise = _DropNoise()
    for logger in loggers:
        logger.addFilter(noise)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


# ---- files ---------------------------------------------------------------------------------------------------------
def graph_size_bytes(path: Path) -> int:
    """Bytes of an ONNX graph and every external data file it references."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    locations: set[str] = set()
    for tensor in _all_tensors(model):
        if uses_external_data(tensor):
            locations.update(e.value for e in tensor.external_data if e.key == "location")
    return path.stat().st_size + sum((path.parent / loc).stat().st_size for loc in locations)


def _all_tensors(model: Any) -> Iterable[Any]:
    from onnx.external_data_helper import _get_all_tensors

    return _get_all_tensors(model)


def _has_external_data(path: Path) -> bool:
    import onnx
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in _all_tensors(onnx.load(str(path), load_external_data=False)))


EXTERNAL_MIN_BYTES = 1024  # tensors below this stay inside the .onnx file


def save_graph(model: Any, dst: Path, external: bool) -> None:
    """Save ``model`` to ``dst``; weights in ``dst.name + '.data'`` when ``external`` (or when over 2 GB)."""
    import onnx

    data = dst.with_name(dst.name + ".data")
    if data.exists():
        data.unlink()
    if external or model.ByteSize() > 2**31 - 2**24:
        # Marked by hand: onnx's own save_as_external_data refuses when a file of that name exists in the
        # *current* directory, whatever folder the model goes to.
        from onnx.external_data_helper import _get_initializer_tensors, set_external_data

        for tensor in _get_initializer_tensors(model):
            if tensor.HasField("raw_data") and len(tensor.raw_data) >= EXTERNAL_MIN_BYTES:
                set_external_data(tensor, data.name)
    onnx.save_model(model, str(dst))


def _resave(produced: Path, job: QuantJob) -> None:
    """Move what a quantizer wrote in a scratch folder to ``job.dst`` with the bundle's data-file name."""
    import onnx

    save_graph(onnx.load(str(produced)), job.dst, external=_has_external_data(job.src))


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _op_counts(path: Path) -> Counter[str]:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def _new_ops(job: QuantJob, watched: tuple[str, ...]) -> tuple[list[str], int]:
    """``["MatMulInteger x14", ...]`` for the watched op types the conversion added, and their total."""
    before, after = _op_counts(job.src), _op_counts(job.dst)
    added = {op: after[op] - before.get(op, 0) for op in watched if after[op] - before.get(op, 0) > 0}
    return [f"{op} x{n}" for op, n in sorted(added.items())], int(sum(added.values()))


def _check_calibration(src: Path, samples: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    import onnx

    if not samples:
        raise InputError(f"{src.name}: calibration was given but holds no sample")
    graph = onnx.load(str(src), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    needed = {i.name for i in graph.input if i.name not in initializers}
    for k, feed in enumerate(samples):
        missing = sorted(needed - set(feed))
        if missing:
            raise InputError(f"{src.name}: calibration sample {k} lacks input {', '.join(missing)}")
    return samples


class _Scratch:
    """A temporary folder beside ``dst`` (same file system), removed afterwards."""

    def __init__(self, job: QuantJob) -> None:
        self.path = Path(tempfile.mkdtemp(dir=job.dst.parent, prefix=f".{job.dst.stem}-"))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# ---- fp32 ----------------------------------------------------------------------------------------------------------
@METHODS.register("fp32")
def _fp32(job: QuantJob) -> dict[str, Any]:
    import onnx

    save_graph(onnx.load(str(job.src)), job.dst, external=_has_external_data(job.src))
    return {"method": "fp32 (as exported)", "ops": [], "excluded": [], "quantized_nodes": 0}


# ---- fp16 ----------------------------------------------------------------------------------------------------------
@METHODS.register("fp16")
def _fp16(job: QuantJob) -> dict[str, Any]:
    import onnx

    from .fp16 import convert_to_fp16

    model = onnx.load(str(job.src))
    big = model.ByteSize() > 2**31 - 2**24
    converted, excluded, n_fp16 = convert_to_fp16(model, infer_shapes=not big)
    save_graph(converted, job.dst, external=_has_external_data(job.src) or big)
    ops, _ = _new_ops(job, ("Cast",))
    return {"method": "fp16 (onnxruntime float16 converter, keep_io_types)", "ops": ops, "excluded": excluded,
            "quantized_nodes": n_fp16,
            "note": "fp32 inputs and outputs; computes in fp16 on GPUs, on CPUs it only halves the file"}


# ---- int8 ----------------------------------------------------------------------------------------------------------
# Bumped whenever a precision's graphs change for the same checkpoint, so cached bundles and benchmark graphs made
# by an earlier method are not reused (part of their cache keys and of the bundle manifest).
# 1: first methods; 2: int8 dynamic keeps activation-product down-projections fp32; 3: the decoder only its first.
QUANTIZATION_REVISION = 3


def cache_tag() -> str:
    """What a cached exported graph depends on besides its checkpoint: the package version and this revision."""
    return f"{__version__}-q{QUANTIZATION_REVISION}"

DYNAMIC_OP_TYPES = ("MatMul", "Gemm")
DYNAMIC_TABLE_OP_TYPES = ("Gather",)  # the token table: int8 rows, dequantized after the gather
STATIC_OP_TYPES = ("MatMul", "Gemm", "Conv")
# Static QDQ is for TensorRT engines; these graphs run once per request (a table lookup, the head, the condition
# terms, one VAE decode) so int8 gains nothing there, and symmetric per-tensor activations cost the most accuracy
# on them (default model, relative error: unet_cond 0.14, vae_decoder 0.14): they stay fp32 in a static bundle.
STATIC_FLOAT_GRAPHS = ("embed_tokens", "gen_head", "unet_cond", "vae_decoder")


def _int8_dynamic(job: QuantJob) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    op_types = list(DYNAMIC_OP_TYPES) + (list(DYNAMIC_TABLE_OP_TYPES) if job.spec_name == "embed_tokens" else [])
    keep_float = gated_product_matmuls(onnx.load(str(job.src), load_external_data=False).graph)
    if job.spec_name in PER_TOKEN_GRAPHS:
        keep_float = keep_float[:1]  # the first layer's, where the outliers are: each fp32 MatMul costs decode speed
    with _Scratch(job) as scratch:
        out = scratch / "model.onnx"
        quantize_dynamic(str(job.src), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=op_types,
                         per_channel=False, use_external_data_format=True, nodes_to_exclude=keep_float,
                         extra_options={"MatMulConstBOnly": True})
        _resave(out, job)
    ops, count = _new_ops(job, ("MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear", "ConvInteger"))
    return {"method": "int8 dynamic (quantize_dynamic, QInt8 weights, per-call activation scales)",
            "ops": ops, "excluded": ["MatMul with a non-constant B (attention scores)", "Conv", "norms",
                                     f"MatMul fed by a product of two activations ({len(keep_float)}: "
                                     "SwiGLU / GELU down-projections kept fp32; the decoder: its first only)"],
            "quantized_nodes": count, "float_nodes": keep_float}


def constant_names(graph: Any) -> set[str]:
    """Names of the graph's constant tensors: initializers and ``Constant`` node outputs."""
    return {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}


PER_TOKEN_GRAPHS = ("decoder",)  # run once per generated token: speed decides what may stay fp32


def gated_product_matmuls(graph: Any) -> list[str]:
    """MatMuls whose input is the product of two activations: the down-projection after a SwiGLU (``silu(gate) *
    up``) or an erf-GELU (``x * 0.5 * (1 + erf(...))``), not a norm's ``weight * x`` (a constant factor).

    Dynamic int8 gives each call's activations one per-tensor scale; these inputs carry the outlier channels that
    LLM.int8 (Dettmers et al., 2022) keeps in float, and quantizing them moved the shipped model's [ECG]-token
    states to a cosine of 0.985 against fp32 (gate: 0.99). In graph order, so the first is the first layer's. The
    decoder keeps only that one fp32 (the outliers of decoder LLMs concentrate in early layers' down-projections,
    Sun et al. 2024, "Massive activations"): cosine 0.993 (the last layer's alone: 0.987; all four: 0.998 but
    int8 decoding then fell to 1.86x torch fp32 instead of 3.57x); the other graphs, run once per window or request,
    keep all of theirs.
    """
    constants = constant_names(graph)
    producer = {o: n for n in graph.node for o in n.output}

    def activation_product(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "Mul" and not any(i in constants for i in node.input)

    return [n.name for n in graph.node if n.op_type == "MatMul" and activation_product(n.input[0])]


def weight_nodes(graph: Any, op_types: Iterable[str]) -> list[str]:
    """Names of the ``op_types`` nodes whose second input is a constant (a weight), not an activation.

    ``quantize_static`` in QDQ format quantizes activation x activation MatMuls too (``MatMulConstBOnly`` is not
    honoured there): attention probabilities over ~150 positions (~0.007 each) then round to multiples of 1/127
    and the default decoder's logits drift by 32 % instead of 1.6 %.
    """
    constants = constant_names(graph)
    wanted = set(op_types)
    return [n.name for n in graph.node if n.op_type in wanted and len(n.input) > 1 and n.input[1] in constants]


def input_layers(graph: Any, op_types: Iterable[str]) -> list[str]:
    """The ``op_types`` nodes that read a graph input directly, such as the ECG encoder's patch convolution.

    They stay float under static int8: a raw ECG in mV has spikes beyond the calibration windows' range that a
    fixed int8 scale clips (the default encoder's error drops from 0.12 to 0.02 with its first Conv kept float).
    """
    inputs = {i.name for i in graph.input}
    wanted = set(op_types)
    return [n.name for n in graph.node if n.op_type in wanted and n.input and n.input[0] in inputs]


class FeedsReader:
    """A ``CalibrationDataReader`` over a list of feeds (onnxruntime accepts any class with ``get_next``)."""

    def __init__(self, samples: list[dict[str, np.ndarray]], input_names: list[str]) -> None:
        self._samples = [{k: np.ascontiguousarray(v) for k, v in s.items() if k in input_names} for s in samples]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._samples):
            return None
        self._next += 1
        return self._samples[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def _int8_static(job: QuantJob) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    assert job.calibration is not None
    if job.spec_name in STATIC_FLOAT_GRAPHS:
        facts = _fp32(job)
        facts["method"] = "fp32 (static int8 applies to ecg_encoder, decoder and unet)"
        facts["note"] = f"{job.spec_name} runs once per request: kept fp32 in a static int8 bundle"
        return facts
    graph = onnx.load(str(job.src), load_external_data=False).graph
    reader = FeedsReader(job.calibration, [i.name for i in graph.input])
    first_layers = input_layers(graph, STATIC_OP_TYPES)
    weighted = [n for n in weight_nodes(graph, STATIC_OP_TYPES) if n not in first_layers]
    with _Scratch(job) as scratch:
        out = scratch / "model.onnx"
        quantize_static(
            str(job.src), str(out), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(STATIC_OP_TYPES),
            nodes_to_quantize=weighted, per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            use_external_data_format=True, calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "ActivationSymmetric": True,  # TensorRT: int8 zero points must be 0
                "WeightSymmetric": True,
                "QuantizeBias": False,  # TensorRT folds float biases itself
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # one scale per output column
                "CalibTensorRangeSymmetric": True,
            },
        )
        _resave(out, job)
    ops, count = _new_ops(job, ("QuantizeLinear", "DequantizeLinear"))
    feeds = len(job.calibration)
    return {"method": f"int8 static QDQ (quantize_static, MinMax over {feeds} calibration feeds of real ECGs, "
                      "symmetric activations, per-channel weights)",
            "ops": ops, "excluded": ["MatMul with a non-constant B (attention scores)", "norms", "Softmax",
                                     *(f"node {n} (reads a graph input)" for n in first_layers)],
            "quantized_nodes": count}


@METHODS.register("int8")
def _int8(job: QuantJob) -> dict[str, Any]:
    return _int8_static(job) if job.calibration is not None else _int8_dynamic(job)


# ---- int4 ----------------------------------------------------------------------------------------------------------
INT4_BLOCK_SIZE = 32  # finer blocks than the 128 default: these decoders are small (hidden 64-1024)
INT4_ACCURACY_LEVEL = 4  # activations quantized to int8 inside MatMulNBits on CPU (fastest kernels)
INT4_GRAPHS = ("decoder", "embed_tokens")


def _weight_only_4bit(job: QuantJob, op_types: tuple[str, ...]) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=INT4_BLOCK_SIZE, is_symmetric=True,
                                          accuracy_level=INT4_ACCURACY_LEVEL, op_types_to_quantize=op_types,
                                          quant_axes=(("MatMul", 0), ("Gather", 1)), bits=4)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(job.src)), algo_config=config)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero blocks (padding rows) have scale 0
        quantizer.process()
    save_graph(quantizer.model.model, job.dst, external=_has_external_data(job.src))


def _token_table_works(job: QuantJob) -> bool:
    """Whether onnxruntime loads the ``GatherBlockQuantized`` table and returns rows close to the fp32 ones."""
    import onnxruntime as ort

    probe = {"input_ids": np.arange(min(8, _vocab_rows(job.src)), dtype=np.int64)[None]}
    try:
        ref = ort.InferenceSession(str(job.src), providers=["CPUExecutionProvider"]).run(None, probe)
        got = ort.InferenceSession(str(job.dst), providers=["CPUExecutionProvider"]).run(None, probe)
    except Exception as exc:  # noqa: BLE001 - any failure means: fall back to int8
        log.warning("%s: 4-bit token table does not run here (%s); using int8", job.dst.name, str(exc)[:200])
        return False
    error = relative_max_error(ref, got)
    if error > TOLERANCES["int4"]["embed_tokens"]:
        log.warning("%s: 4-bit token table error %.3g; using int8", job.dst.name, error)
        return False
    return True


def _vocab_rows(src: Path) -> int:
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    gathers = {n.input[0] for n in model.graph.node if n.op_type == "Gather"}
    dims = [t.dims[0] for t in model.graph.initializer if t.name in gathers and t.dims]
    return int(max(dims, default=1))


@METHODS.register("int4")
def _int4(job: QuantJob) -> dict[str, Any]:
    if job.spec_name == "decoder":
        _weight_only_4bit(job, ("MatMul",))
        ops, count = _new_ops(job, ("MatMulNBits",))
        return {"method": f"int4 weight-only MatMulNBits (block {INT4_BLOCK_SIZE}, symmetric, "
                          f"accuracy level {INT4_ACCURACY_LEVEL})",
                "ops": ops, "excluded": ["MatMul with a non-constant B (attention scores)", "norms"],
                "quantized_nodes": count}
    if job.spec_name == "embed_tokens":
        _weight_only_4bit(job, ("Gather",))
        if _token_table_works(job):
            ops, count = _new_ops(job, ("GatherBlockQuantized",))
            return {"method": f"int4 weight-only GatherBlockQuantized (block {INT4_BLOCK_SIZE}, symmetric)",
                    "ops": ops, "excluded": [], "quantized_nodes": count,
                    "note": "int4 tensors need opset 21: the graph's opset was raised (rows checked against fp32)"}
    facts = _int8_dynamic(job)
    facts["method"] = "int8 dynamic (int4 applies to the decoder and token table only) / " + facts["method"]
    facts["note"] = f"int4 requested: {job.spec_name} carries int8 dynamic weights"
    return facts
