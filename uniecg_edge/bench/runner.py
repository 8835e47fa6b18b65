"""One benchmark run: every backend x precision this machine offers, the same real windows, one JSON result.

The order: check the names asked for (unknown backend, precision or device profile: one-line ``ConfigError``),
verify the given bundles (``BundleError``), note the machine and the bandwidth, then for each combination either
say why it is skipped (backend not installed, precision it does not run, no bundle at that precision) or open it,
time every stage (:mod:`.stages`) and read its peak memory. Without ``--bundle`` the model is exported at each
precision needed, once: the bundles are kept under the package cache keyed by the checkpoint's sha256.
"""

from __future__ import annotations

import datetime
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..data import EXAMPLE_RECORD
from ..errors import ConfigError, UniEcgError
from .adapters import ADAPTERS, AdapterOptions
from .ceiling import DEVICE_PROFILES, judge_at_highest_bandwidth
from .machine import collect_machine, load_average, usable_cores
from .memory import PeakMemory
from .report import BENCH_FORMAT, BENCH_FORMAT_VERSION
from .stages import StageInputs, ceiling_facts, host_rows, load_inputs, measure_adapter
from .timing import TimingConfig

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int4")
DEFAULT_PRECISIONS = ("fp32", "int8")
DECODE_TARGET = ("onnxruntime", "int8", "torch", "fp32", 2.0)  # onnxruntime int8 decodes >= 2x torch fp32


@dataclass(frozen=True)
class BenchConfig:
    """What one ``uniecg-edge bench`` run measures (saved in the result's ``settings``)."""

    backends: tuple[str, ...] | None = None  # None: every registered backend
    precisions: tuple[str, ...] | None = None  # None: fp32 and int8 (scale: fp32, int8, int4)
    bundles: tuple[Path, ...] = ()
    model_dir: Path | None = None
    records: tuple[Path, ...] = (EXAMPLE_RECORD,)
    windows_per_record: int = 3
    timing: TimingConfig = field(default_factory=TimingConfig)
    threads: int = 1
    threads_reason: str = ""
    device_profile: str | None = None
    providers: tuple[str, ...] | None = None
    scale: bool = False
    scale_decoders: tuple[str, ...] | None = None
    scale_steps: tuple[int, ...] | None = None  # None: the default list; (): no generation sweep
    stages: tuple[str, ...] | None = None  # None: every stage

    def check(self) -> None:
        """One-line ``ConfigError`` for an unknown backend, precision or device profile."""
        for name in self.backends or ():
            ADAPTERS.get(name)
        for precision in self.precisions or ():
            if precision not in PRECISIONS:
                raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
        if self.device_profile is not None:
            DEVICE_PROFILES.get(self.device_profile)
        if self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}")
        if self.stages is not None:
            from .stages import STAGE_LABELS

            unknown = [s for s in self.stages if s not in STAGE_LABELS]
            if unknown:
                raise ConfigError(f"unknown stage {unknown[0]!r} (known: {', '.join(STAGE_LABELS)})")

    def settings(self) -> dict[str, Any]:
        out = asdict(self)
        out["timing"] = asdict(self.timing)
        return {k: ([str(p) for p in v] if k in ("bundles", "records") else str(v) if isinstance(v, Path) else v)
                for k, v in out.items()}


Progress = Callable[[str], None]


def bandwidth_facts(config: BenchConfig, say: Progress) -> dict[str, Any]:
    """The bandwidth the ceilings use: the device profile's data-sheet figure, or a streaming-copy probe."""
    if config.device_profile is not None:
        profile = DEVICE_PROFILES.get(config.device_profile)
        say(f"bandwidth: {profile.bandwidth_gb_s} GB/s from the {profile.label} profile")
        return {"gb_per_s": profile.bandwidth_gb_s, "source": f"device profile {profile.name} ({profile.label})",
                "profile": asdict(profile)}
    from .bandwidth import measure_bandwidth

    say("bandwidth: streaming-copy probe")
    facts = measure_bandwidth(usable_cores())
    say(f"bandwidth: {facts['gb_per_s']:.1f} GB/s measured")
    return facts


def verify_bundles(paths: Sequence[Path]) -> list[Any]:
    from ..export.bundle import load_bundle

    return [load_bundle(path) for path in paths]  # BundleError names the bundle and the file in one line


def bench_bundle_dir(model_dir: Path | None, precision: str) -> tuple[Path, Path]:
    """(cache folder of the benchmark's exported bundle at ``precision``, the checkpoint it is exported from)."""
    from ..export.quantize import cache_tag
    from ..model.default import cache_root, default_model_dir
    from ..model.uniecg import checkpoint_sha256

    source = Path(model_dir) if model_dir is not None else default_model_dir()
    key = f"{checkpoint_sha256(source)[:16]}-{cache_tag()}"
    return cache_root() / "bench" / "bundles" / key / precision, source


def exported_bundle(model_dir: Path | None, precision: str, say: Progress) -> Any:
    """The model's bundle at ``precision``, exported on first use and reused while it verifies."""
    from ..export.bundle import load_bundle
    from ..export.exporter import ExportOptions, export_bundle
    from ..model.uniecg import checkpoint_sha256

    folder, source = bench_bundle_dir(model_dir, precision)
    if (folder / "manifest.json").is_file():
        try:
            bundle = load_bundle(folder)
            if bundle.manifest["source_model"]["sha256"] == checkpoint_sha256(source):
                say(f"{precision} bundle: reusing {folder}")
                return bundle
        except UniEcgError as exc:
            say(f"{precision} bundle in the cache is unusable ({exc}); exporting again")
    folder.parent.mkdir(parents=True, exist_ok=True)
    say(f"{precision} bundle: exporting {source.name} (once; kept in {folder.parent})")
    export_bundle(folder, source, ExportOptions(precision=precision, overwrite=True),
                  progress=lambda line: say(f"  export: {line}"))
    return load_bundle(folder)


@dataclass
class Combination:
    backend: str
    precision: str
    status: str = "pending"  # ok | skipped | failed
    reason: str = ""
    bundle: Any = None

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "precision": self.precision, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.bundle is not None:
            out["bundle"] = str(self.bundle.root)
        return out


def plan_combinations(config: BenchConfig, bundles: list[Any], say: Progress) -> list[Combination]:
    """Every backend x precision asked for, with the bundle it runs or the reason it is skipped."""
    backends = list(config.backends or list(ADAPTERS))
    if config.precisions:
        precisions = list(config.precisions)
    elif bundles:
        precisions = list(dict.fromkeys(b.precision for b in bundles))
    else:
        precisions = list(DEFAULT_PRECISIONS)
    combos: list[Combination] = []
    exported: dict[str, Any] = {}
    for backend in backends:
        adapter = ADAPTERS.get(backend)
        missing = adapter.unavailable_reason()
        for precision in precisions:
            combo = Combination(backend, precision)
            combos.append(combo)
            reason = missing or adapter.precision_reason(precision)
            if reason is None and adapter.needs_bundle:
                combo.bundle, reason = _bundle_for(precision, config, bundles, exported, say)
                if reason is None:
                    reason = adapter.bundle_reason(combo.bundle)
            elif reason is None and bundles and config.model_dir is None:
                reason = _torch_source_reason(bundles)
            if reason is not None:
                combo.status, combo.reason = "skipped", reason
    return combos


def _bundle_for(precision: str, config: BenchConfig, bundles: list[Any], exported: dict[str, Any],
                say: Progress) -> tuple[Any, str | None]:
    if bundles:
        for bundle in bundles:
            if bundle.precision == precision:
                return bundle, None
        given = ", ".join(f"{b.root} ({b.precision})" for b in bundles)
        return None, f"no {precision} bundle among --bundle {given}"
    if precision not in exported:
        try:
            exported[precision] = (exported_bundle(config.model_dir, precision, say), None)
        except UniEcgError as exc:
            exported[precision] = (None, f"export at {precision} failed: {exc}")
    return exported[precision]


def _torch_source_reason(bundles: list[Any]) -> str | None:
    """Torch runs the checkpoint: without --model it is the default model, which must be the bundles' source."""
    from ..model.default import default_model_dir
    from ..model.uniecg import checkpoint_sha256

    default_sha = checkpoint_sha256(default_model_dir())
    foreign = [b for b in bundles if (b.manifest.get("source_model") or {}).get("sha256") != default_sha]
    if foreign:
        return (f"{foreign[0].root} was not exported from the default model: pass its checkpoint with --model DIR "
                "for the torch reference")
    return None


def run_combination(combo: Combination, config: BenchConfig, inputs: StageInputs, bandwidth: dict[str, Any],
                    say: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Open, time and close one combination; its rows and its summary (status ``ok`` or ``failed``)."""
    peak = PeakMemory()
    peak.reset()
    adapter = None
    try:
        adapter = ADAPTERS.get(combo.backend)(combo.precision, combo.bundle,
                                              AdapterOptions(threads=config.threads, model_dir=config.model_dir,
                                                             providers=config.providers))
        say(f"{combo.backend} {combo.precision}: running on {adapter.execution_provider}")
        rows, facts = measure_adapter(adapter, combo.precision, inputs, config.timing, say, config.stages)
        summary = {**combo.row(), "status": "ok", "execution_provider": adapter.execution_provider,
                   "details": adapter.describe(), "model_bytes": adapter.model_bytes,
                   "decoder_weight_bytes": adapter.decoder_weight_bytes, **facts,
                   **ceiling_facts(adapter, facts, bandwidth["gb_per_s"], bandwidth["source"]), **peak.read()}
        return rows, summary
    except Exception as exc:  # noqa: BLE001 - a failing combination is reported, the others still run
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        combo.status, combo.reason = "failed", f"{type(exc).__name__}: {first}"
        log.debug("combination %s %s failed", combo.backend, combo.precision, exc_info=True)
        say(f"{combo.backend} {combo.precision}: failed ({combo.reason})")
        return [], combo.row()
    finally:
        if adapter is not None:
            adapter.close()
        del adapter
        gc.collect()


def decode_comparisons(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Decode tokens/s of every combination against torch fp32 (the reference), side by side in this run."""
    rates = {(s["backend"], s["precision"]): s.get("decode_tokens_per_s") for s in summaries if s["status"] == "ok"}
    reference = rates.get(("torch", "fp32"))
    out: dict[str, Any] = {}
    if not reference:
        return out
    backend, precision, ref_backend, ref_precision, target = DECODE_TARGET
    for (b, p), rate in rates.items():
        if rate is None or (b, p) == ("torch", "fp32"):
            continue
        item: dict[str, Any] = {"label": f"{b} {p} decode tokens/s vs torch fp32", "value": rate / reference,
                                "numerator_tokens_per_s": rate, "reference_tokens_per_s": reference}
        if (b, p) == (backend, precision):
            item["target"] = target
            item["passed"] = rate / reference >= target
        out[f"decode_speedup_{b}_{p}_vs_torch_fp32"] = item
    return out


def run_bench(config: BenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark described by ``config``; the JSON-ready result (see :mod:`.report`)."""
    say = progress or log.info
    config.check()
    bundles = verify_bundles(config.bundles)
    inputs = load_inputs(config.records, config.windows_per_record)
    say(f"inputs: {len(inputs.windows)} window(s) of 10 s from {', '.join(Path(r).stem for r in config.records)}")
    machine = collect_machine(config.threads)
    bandwidth = bandwidth_facts(config, say)
    result: dict[str, Any] = {
        "format": BENCH_FORMAT, "format_version": BENCH_FORMAT_VERSION,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__, "machine": machine,
        "settings": {**config.settings(), "windows": len(inputs.windows),
                     "repeats": config.timing.repeats, "warmup": config.timing.warmup,
                     "records": [Path(r).stem for r in config.records]},
        "bandwidth": bandwidth,
    }
    if config.scale:
        from .scale import run_scale

        result["model"] = {"name": "scale study (random-weight decoders and the default model)"}
        result["scale"] = run_scale(config, inputs, bandwidth, say)
        result["comparisons"] = result["scale"].pop("comparisons", {})
    else:
        result.update(_run_matrix(config, bundles, inputs, bandwidth, say))
    result["load_average_after"] = load_average()
    if bandwidth.get("source") == "measured":  # a shared machine's bandwidth drifts: say by how much
        from .bandwidth import measure_bandwidth

        result["bandwidth_after"] = measure_bandwidth(usable_cores())
        result["comparisons"] = judge_at_highest_bandwidth(result.get("comparisons") or {}, bandwidth["gb_per_s"],
                                                           result["bandwidth_after"]["gb_per_s"])
    return result


def _run_matrix(config: BenchConfig, bundles: list[Any], inputs: StageInputs, bandwidth: dict[str, Any],
                say: Progress) -> dict[str, Any]:
    combos = plan_combinations(config, bundles, say)
    for combo in combos:
        if combo.status == "skipped":
            say(f"{combo.backend} {combo.precision}: skipped ({combo.reason})")
    rows: list[dict[str, Any]] = []
    if config.stages is None or "preprocess_dsp" in config.stages:
        rows += host_rows(inputs, config.timing)
    summaries: list[dict[str, Any]] = []
    runnable = [c for c in combos if c.status == "pending"]
    for combo in combos:
        if combo.status != "pending":
            summaries.append(combo.row())
            continue
        say(f"[{runnable.index(combo) + 1}/{len(runnable)}] {combo.backend} {combo.precision}")
        new_rows, summary = run_combination(combo, config, inputs, bandwidth, say)
        rows += new_rows
        summaries.append(summary)
    model = _model_facts(config, bundles, combos)
    return {"model": model, "combinations": summaries, "rows": rows, "comparisons": decode_comparisons(summaries)}


def _model_facts(config: BenchConfig, bundles: list[Any], combos: list[Combination]) -> dict[str, Any]:
    for combo in combos:
        if combo.bundle is not None:
            source = combo.bundle.manifest.get("source_model") or {}
            return {"name": source.get("name"), "sha256": source.get("sha256"), "trained": source.get("trained")}
    if config.model_dir is not None:
        return {"name": Path(config.model_dir).name}
    from ..model.default import DEFAULT_NAME

    return {"name": DEFAULT_NAME, "trained": False}
