"""The edge bundle on disk: staged writing, the checksummed manifest, and a loader that verifies every file.

A bundle is written into a hidden sibling folder (``.NAME.partial-XXXX``) and renamed into place only once its
``manifest.json`` (written last) is complete, so no half-written bundle ever looks complete: a folder without a
manifest is refused by :func:`load_bundle`. The loader refuses an unknown format, a newer format version, a
listed file that is missing or whose sha256 differs, and a graph file the manifest does not list.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import BundleError, InputError

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "uniecg-edge-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
CONFIG_NAME = "config.json"
GRAPH_SUFFIXES = (".onnx", ".onnx.data")
UNCHECKED_DIRS = ("engines",)  # TensorRT engines: built on the device later, keyed by graph sha256


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundle_files(root: Path) -> list[str]:
    """Every file under ``root`` except the manifest and the engines folder, as sorted POSIX paths."""
    files = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and rel.as_posix() != MANIFEST_NAME and rel.parts[0] not in UNCHECKED_DIRS:
            files.append(rel.as_posix())
    return sorted(files)


def write_manifest(root: str | os.PathLike[str], manifest: dict[str, Any]) -> dict[str, Any]:
    """Add ``files`` (sha256 of every file but the manifest) to ``manifest`` and write it last, as manifest.json."""
    base = Path(root)
    complete = {**manifest, "files": {rel: sha256_file(base / rel) for rel in _bundle_files(base)}}
    tmp = base / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(complete, indent=2) + "\n")
    tmp.rename(base / MANIFEST_NAME)
    return complete


def check_output_folder(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an existing output folder unless ``overwrite`` (and never something that is not a folder)."""
    path = Path(out)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise InputError(f"{path}: exists and is not a folder")
        if not overwrite:
            raise InputError(f"{path}: output folder exists (pass --overwrite to replace it)")
    if not path.parent.exists():
        raise InputError(f"{path.parent}: parent folder does not exist")
    return path


@contextlib.contextmanager
def staged_bundle(out: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``out``; on success rename it to ``out`` (replacing an old bundle
    only when ``overwrite``), on any error remove it and leave ``out`` as it was."""
    target = check_output_folder(out, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield staging
        if not (staging / MANIFEST_NAME).is_file():
            raise BundleError(f"{target}: export finished without a manifest; nothing written")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            target.rename(old / target.name)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder, manifest and runtime config."""

    root: Path
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def precision(self) -> str:
        return str(self.manifest["precision"])

    @property
    def graph_names(self) -> list[str]:
        return list(self.manifest["graphs"])

    def graph_path(self, name: str) -> Path:
        graphs = self.manifest["graphs"]
        if name not in graphs:
            raise BundleError(f"{self.root}: no graph {name!r} in the bundle (has: {', '.join(graphs) or 'none'})")
        return self.root / graphs[name]["file"]

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    def sha256(self) -> str:
        """One checksum of the whole bundle: the sha256 of its manifest (which lists every file's sha256)."""
        return sha256_file(self.root / MANIFEST_NAME)


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle folder")
    if not path.is_file():
        raise BundleError(f"{root}: not an edge bundle (no {MANIFEST_NAME}; an interrupted export leaves none)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: unknown format {manifest.get('format')!r} (expected {BUNDLE_FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {version} is newer than this package reads ({FORMAT_VERSION}); "
                          "upgrade uniecg-edge")
    for key in ("files", "graphs"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"{path}: missing or invalid {key!r}")
    return manifest


def _safe_member(root: Path, rel: str) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise BundleError(f"{root}: manifest lists a file outside the bundle: {rel!r}")
    return root / pure


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Every listed file present with its sha256, every graph's files and the config listed, and no file that the
    manifest does not list (a tokenizer or config file dropped in would change the output unseen); only
    ``engines/``, built on the device later and keyed by graph sha256, is outside the manifest."""
    files: dict[str, str] = manifest["files"]
    for name, graph in manifest["graphs"].items():
        for rel in [graph.get("file"), *graph.get("data_files", [])]:
            if rel not in files:
                raise BundleError(f"{root}: graph {name} file {rel!r} is not listed in the manifest's files")
    if CONFIG_NAME not in files:
        raise BundleError(f"{root}: {CONFIG_NAME} is not listed in the manifest's files")
    for rel in _bundle_files(root):
        if rel not in files:
            kind = "graph file" if rel.endswith(GRAPH_SUFFIXES) else "file"
            raise BundleError(f"{root}: extra {kind} {rel} is not in the manifest")
    for rel, expected in files.items():
        path = _safe_member(root, rel)
        if not path.is_file():
            raise BundleError(f"{root}: missing file {rel} (listed in the manifest)")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(f"{root}: {rel} does not match the manifest (sha256 {actual[:12]}…, "
                              f"expected {str(expected)[:12]}…): the file was changed or damaged")


def load_bundle(directory: str | os.PathLike[str], *, verify: bool = True) -> Bundle:
    """Open a bundle folder, verifying its format and every file's sha256 (``BundleError`` in one line)."""
    root = Path(directory)
    manifest = _read_manifest(root)
    if verify:
        verify_files(root, manifest)
    try:
        config = json.loads((root / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{root}: unreadable {CONFIG_NAME} ({exc})") from None
    log.debug("loaded bundle %s (%s, %d graphs)", root, manifest.get("precision"), len(manifest["graphs"]))
    return Bundle(root=root, manifest=manifest, config=config)
