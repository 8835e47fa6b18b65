"""``export_bundle``: UniECG checkpoint -> ONNX graphs, each checked against PyTorch -> a checksummed edge bundle.

Every precision starts from an fp32 export that must pass its fp32 parity gate. For fp16 / int8 / int4 the
fp32 graph is then handed to ``uniecg_edge.export.quantize.quantize_graph`` and the quantized graph is checked
against torch fp32 at that precision's tolerance (:func:`quantization_api` is the hook). Greedy decoding through
the ONNX graphs must give the torch pipeline's tokens at fp32 (recorded, not required, when quantized).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .. import __version__
from ..data import EXAMPLE_RECORD
from ..errors import BackendUnavailableError, ConfigError
from .bundle import BUNDLE_FORMAT, CONFIG_NAME, FORMAT_VERSION, check_output_folder, staged_bundle, write_manifest
from .onnx_export import DEFAULT_OPSET, export_graph
from .parity import GREEDY_TOKENS, ParityError, RealInputs, check_graph, check_greedy
from .quantize import QUANTIZATION_REVISION
from .runtime_config import build_runtime_config
from .spec import GraphSpec, graph_specs

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int4")
OPSETS = range(18, 24)  # dynamo's translation starts at 18; 23 adds Attention ops that quantize_dynamic mis-handles
GREEDY_GRAPHS = {"ecg_encoder", "embed_tokens", "decoder"}
CALIBRATION_WINDOWS = 8


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how; saved in the manifest through its effects (precision, opset, parity inputs)."""

    precision: str = "fp32"
    opset: int = DEFAULT_OPSET
    overwrite: bool = False
    graphs: tuple[str, ...] | None = None  # None: every graph of GRAPH_ORDER
    parity_records: tuple[Path, ...] = (EXAMPLE_RECORD,)
    calibration_records: tuple[Path, ...] = ()  # int8: static QDQ calibrated on these; none: int8 dynamic
    calibration_windows: int = CALIBRATION_WINDOWS
    greedy_tokens: int = GREEDY_TOKENS

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r} (known: {', '.join(PRECISIONS)})")
        if self.opset not in OPSETS:
            raise ConfigError(f"opset {self.opset} is not supported (use {OPSETS.start}..{OPSETS.stop - 1})")
        if not self.parity_records:
            raise ConfigError("parity needs at least one ECG record")


def quantization_api(precision: str) -> ModuleType | None:
    """The quantization module for ``precision`` (``None`` for fp32): the hook between export and quantization.

    Used: ``quantize_graph(spec_name, src, dst, precision, *, calibration) -> dict`` (manifest facts) and
    ``TOLERANCES[precision][spec_name]``, a bound on ``relative_max_error`` (max |ONNX - torch fp32| / max |torch|).
    """
    if precision == "fp32":
        return None
    try:
        from . import quantize
    except ImportError as exc:
        raise BackendUnavailableError(f"--{precision} needs uniecg_edge.export.quantize, which is not available "
                                      f"({exc})") from None
    if not callable(getattr(quantize, "quantize_graph", None)) or precision not in getattr(quantize, "TOLERANCES", {}):
        raise BackendUnavailableError(f"--{precision}: uniecg_edge.export.quantize has no quantize_graph() or no "
                                      f"{precision} tolerances")
    return quantize


def tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "onnx", "onnxscript", "onnxruntime"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _copy_model_files(model: Any, model_dir: Path, staging: Path) -> dict[str, Any]:
    """config.json, tokenizer/ (from the checkpoint, plus tokenizer.json for the torch-free runtime), scheduler."""
    import json

    from ..model.schedulers import save_scheduler_config

    runtime_config = build_runtime_config(model)
    (staging / CONFIG_NAME).write_text(json.dumps(runtime_config, indent=2) + "\n")
    shutil.copytree(model_dir / "tokenizer", staging / "tokenizer")
    if not (staging / "tokenizer" / "tokenizer.json").is_file():
        model.tokenizer.save_pretrained(str(staging / "tokenizer"))
        if not (staging / "tokenizer" / "tokenizer.json").is_file():
            raise ConfigError(f"{model_dir / 'tokenizer'}: no tokenizer.json (the runtime needs a fast tokenizer)")
    save_scheduler_config(model.scheduler, staging / "scheduler.json")
    return runtime_config


def calibration_inputs(model: Any, options: ExportOptions) -> RealInputs | None:
    """Real inputs for every graph from 10 s windows of the calibration records (never the check records)."""
    if not options.calibration_records:
        return None
    from ..leads import STANDARD_LEADS
    from ..record import EcgRecord
    from .calibration import ecg_calibration_windows

    windows = ecg_calibration_windows(options.calibration_records, max_windows=options.calibration_windows)
    records = [EcgRecord(w, fs=500.0, leads=STANDARD_LEADS, name=f"calibration window {i}")
               for i, w in enumerate(windows)]
    return RealInputs(model, records)


def _calibration(spec: GraphSpec, model: Any, calibration: RealInputs | None) -> list[dict[str, np.ndarray]] | None:
    if calibration is None:
        return None
    names = [s.name for s in spec.inputs(model)]
    return [dict(zip(names, inputs, strict=True)) for _, inputs in spec.real_inputs(calibration)]


def _export_one(spec: GraphSpec, model: Any, staging: Path, real: RealInputs, options: ExportOptions,
                api: ModuleType | None, calibration: RealInputs | None, fp32_dir: Path | None) -> dict[str, Any]:
    """Export one graph into ``staging`` and check it; when quantizing, export into ``fp32_dir`` first, check that,
    then quantize into ``staging`` and check the result. Returns the graph's manifest entry."""
    exported = export_graph(spec, model, fp32_dir or staging, opset=options.opset)
    start = time.perf_counter()
    parity = check_graph(spec, model, exported.path, real)  # the fp32 graph must be right before anything else
    facts: dict[str, Any] = {}
    if api is not None:
        facts = dict(api.quantize_graph(spec.name, exported.path, staging / spec.file_name, options.precision,
                                        calibration=_calibration(spec, model, calibration)) or {})
        parity = check_graph(spec, model, staging / spec.file_name, real, precision=options.precision,
                             metric="relative_max_error",
                             tolerance=float(api.TOLERANCES[options.precision][spec.name]))
    data_files = sorted(p.name for p in staging.glob(f"{spec.file_name}.data"))
    size = sum((staging / name).stat().st_size for name in [spec.file_name, *data_files])
    entry = {
        "file": spec.file_name, "data_files": data_files, "precision": facts.get("precision", options.precision),
        "opset": int(facts.get("opset", options.opset)), "size_bytes": size, **spec.manifest_entry(model),
        "parity": parity.to_manifest(), "export_s": round(exported.export_s, 3),
        "check_s": round(time.perf_counter() - start, 3),
    }
    if facts:
        entry["quantization"] = facts
    return entry


def _quantization_gates(fp32_dir: Path | None, staging: Path, records: list[Any], precision: str,
                        graphs: dict[str, Any]) -> dict[str, Any]:
    """The quantized bundle against its fp32 twin (``gates.run_gates``); ``ParityError`` when a gate fails."""
    if fp32_dir is None or not GREEDY_GRAPHS <= set(graphs):
        return {}
    from .gates import run_gates

    gates = run_gates(fp32_dir, staging, records, precision=precision)
    failed = [name for name, gate in gates.items() if gate.get("passed") is False]
    if failed:
        gate = gates[failed[0]]
        raise ParityError(f"the {precision} bundle fails the quantization gate {failed[0]}: value {gate['value']} "
                          f"below threshold {gate['threshold']}" + (f" (also failed: {', '.join(failed[1:])})"
                                                                    if len(failed) > 1 else ""))
    return gates


@contextlib.contextmanager
def _fp32_twin(staging: Path, wanted: bool) -> Iterator[Path | None]:
    """A hidden folder beside the staging one for the fp32 graphs that a quantized bundle is made from and gated
    against; removed afterwards."""
    if not wanted:
        yield None
        return
    twin = Path(tempfile.mkdtemp(prefix=".fp32-", dir=staging.parent))
    try:
        yield twin
    finally:
        shutil.rmtree(twin, ignore_errors=True)


def export_bundle(out: str | os.PathLike[str], model_dir: str | os.PathLike[str] | None = None,
                  options: ExportOptions | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Export the model in ``model_dir`` (default: the package's default model) into the bundle folder ``out``.

    Returns the manifest. Raises ``InputError`` subclasses (one line) for a bad checkpoint, an existing output
    folder without ``overwrite``, or a graph that fails parity; ``out`` is then left as it was.
    """
    from ..model.default import default_model_dir
    from ..model.uniecg import UniEcgModel, checkpoint_sha256
    from ..wfdb_io import read_record

    opts = options or ExportOptions()
    say = progress or log.info
    api = quantization_api(opts.precision)
    specs = graph_specs(opts.graphs)
    check_output_folder(out, opts.overwrite)
    source = Path(model_dir) if model_dir is not None else default_model_dir()
    model = UniEcgModel.from_pretrained(source)
    records = [read_record(p) for p in opts.parity_records]
    real = RealInputs(model, records)
    calibration = calibration_inputs(model, opts) if api is not None else None
    started = time.perf_counter()
    with staged_bundle(out, overwrite=opts.overwrite) as staging, _fp32_twin(staging, api is not None) as fp32_dir:
        runtime_config = _copy_model_files(model, source, staging)
        if fp32_dir is not None:
            _copy_model_files(model, source, fp32_dir)
        graphs: dict[str, Any] = {}
        for index, spec in enumerate(specs, 1):
            say(f"[{index}/{len(specs)}] {spec.name}: exporting ({opts.precision}, opset {opts.opset})")
            graphs[spec.name] = entry = _export_one(spec, model, staging, real, opts, api, calibration, fp32_dir)
            p = entry["parity"]
            what = "max |diff|" if p["metric"] == "max_abs_diff" else "relative max error"
            say(f"[{index}/{len(specs)}] {spec.name}: {entry['size_bytes'] / 1e6:.2f} MB, {what} "
                f"{p[p['metric']]:.3g} <= {p['tolerance']:.3g}, {entry['export_s'] + entry['check_s']:.1f} s")
        greedy: dict[str, Any] = {"greedy_tokens_equal": None, "num_tokens": 0, "records": []}
        if GREEDY_GRAPHS <= set(graphs):
            say(f"greedy decoding through ONNX vs torch ({opts.greedy_tokens} tokens, {len(records)} record(s))")
            greedy = check_greedy(model, staging, runtime_config, records, num_tokens=opts.greedy_tokens,
                                  require_equal=opts.precision == "fp32")
        if fp32_dir is not None and GREEDY_GRAPHS <= set(graphs):
            say(f"quantization gates: the {opts.precision} bundle against its fp32 twin")
        gates = _quantization_gates(fp32_dir, staging, records, opts.precision, graphs)
        manifest = {
            "format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "package_version": __version__, "precision": opts.precision, "opset": opts.opset,
            "quantization_revision": QUANTIZATION_REVISION,
            "source_model": {"name": model.config.name, "sha256": checkpoint_sha256(source),
                             "trained": model.config.trained, "licence": model.config.licence},
            "licence": model.config.licence, "tool_versions": tool_versions(),
            "graphs": graphs, "parity": greedy,
            "gates": gates,
            "export_total_s": round(time.perf_counter() - started, 3),
        }
        manifest = write_manifest(staging, manifest)
    say(f"bundle written to {out}")
    return manifest
