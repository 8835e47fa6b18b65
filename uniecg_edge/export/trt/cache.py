"""Engine and timing caches inside a bundle's ``engines/`` folder.

Layout (bundle contract)::

    engines/<key>/<graph>.plan          serialized engine
    engines/<key>/engine.json           what built it: key facts, TensorRT version, profile, flags, build time
    engines/timing-<device key>.cache   TensorRT timing cache, shared by all graphs of one GPU / TensorRT / precision

``key = <gpu-name>_sm<cc>_trt<version>_<graph sha256[:12]>_<precision>``. An engine is reused ("engine cache hit")
when its ``engine.json`` names the same key, graph and profile and the plan's sha256 still matches; anything else
rebuilds it. A timing cache is specific to the device, TensorRT version and builder flags but not to a graph, so
its name is the key without the graph checksum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import sha256_file
from .gpu import GpuInfo

log = logging.getLogger(__name__)

ENGINES_DIR = "engines"
ENGINE_META = "engine.json"
ENGINE_FORMAT = "uniecg-edge-engine"
ENGINE_FORMAT_VERSION = 1


def slug(text: str) -> str:
    """A file-name-safe lower-case form: runs of anything but ``[a-z0-9.]`` become one ``-``."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"


def device_key(gpu: GpuInfo, trt_version: str, precision: str) -> str:
    """``<gpu-name>_sm<cc>_trt<version>_<precision>``: what a timing cache depends on."""
    return f"{slug(gpu.name)}_sm{gpu.sm}_trt{slug(trt_version)}_{precision}"


def engine_key(gpu: GpuInfo, trt_version: str, graph_sha256: str, precision: str) -> str:
    """``<gpu-name>_sm<cc>_trt<version>_<graph sha256[:12]>_<precision>`` (notes/bundle.md)."""
    if not re.fullmatch(r"[0-9a-f]{12,64}", graph_sha256):
        raise ValueError(f"not a sha256 hex digest: {graph_sha256!r}")
    return f"{slug(gpu.name)}_sm{gpu.sm}_trt{slug(trt_version)}_{graph_sha256[:12]}_{precision}"


def timing_cache_path(bundle_dir: Path, gpu: GpuInfo, trt_version: str, precision: str) -> Path:
    return bundle_dir / ENGINES_DIR / f"timing-{device_key(gpu, trt_version, precision)}.cache"


@dataclass(frozen=True)
class EnginePaths:
    folder: Path
    plan: Path
    meta: Path


def engine_paths(bundle_dir: Path, key: str, graph: str) -> EnginePaths:
    folder = bundle_dir / ENGINES_DIR / key
    return EnginePaths(folder, folder / f"{graph}.plan", folder / ENGINE_META)


def read_engine_meta(path: Path) -> dict[str, Any]:
    """The engine.json of a key folder; an empty table when it is absent or unreadable (then engines rebuild)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == ENGINE_FORMAT else {}


def cached_engine(bundle_dir: Path, key: str, graph: str, profile: Mapping[str, Any]) -> dict[str, Any] | None:
    """The engine.json entry of a reusable engine, or None (with the reason logged) when it must be built."""
    paths = engine_paths(bundle_dir, key, graph)
    if not paths.plan.is_file():
        return None
    meta = read_engine_meta(paths.meta)
    entry = (meta.get("graphs") or {}).get(graph)
    reason = None
    if meta.get("key") != key or not isinstance(entry, dict):
        reason = "engine.json does not describe it"
    elif entry.get("profile") != profile:
        reason = "the optimization profile changed"
    elif entry.get("plan_sha256") != sha256_file(paths.plan):
        reason = "the plan file does not match its sha256"
    if reason is not None:
        log.info("rebuilding %s: %s", paths.plan, reason)
        return None
    return dict(entry) if isinstance(entry, dict) else None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def store_engine(bundle_dir: Path, key: str, graph: str, plan: bytes, key_facts: Mapping[str, Any],
                 graph_facts: Mapping[str, Any]) -> Path:
    """Write ``<graph>.plan`` and merge its entry (plus its sha256 and size) into the key's engine.json."""
    paths = engine_paths(bundle_dir, key, graph)
    _atomic_write(paths.plan, plan)
    meta = read_engine_meta(paths.meta)
    if meta.get("key") != key:
        meta = {}
    meta.update({"format": ENGINE_FORMAT, "format_version": ENGINE_FORMAT_VERSION, "key": key, **key_facts})
    graphs = dict(meta.get("graphs") or {})
    graphs[graph] = {**graph_facts, "plan": paths.plan.name, "plan_sha256": hashlib.sha256(plan).hexdigest(),
                     "size_bytes": len(plan)}
    meta["graphs"] = graphs
    _atomic_write(paths.meta, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return paths.plan


def read_timing_cache(path: Path) -> bytes:
    """The serialized timing cache, or ``b""`` (an empty cache for ``create_timing_cache``)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def write_timing_cache(path: Path, data: bytes) -> None:
    _atomic_write(path, data)
