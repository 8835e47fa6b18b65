"""The demo's bundle cache: one verified edge bundle per (source checkpoint, precision, package version).

Layout: ``cache_root()/bundles/<key>/`` with ``key = <model name>-<checkpoint sha256[:16]>-<precision>-<version>``
(``cache_root()`` honours ``$UNIECG_EDGE_CACHE``). A cached bundle is reused only when it verifies
(``load_bundle``: every file's sha256 against its manifest) and its manifest names the same checkpoint checksum,
precision and package version. Anything else (a tampered or damaged file, a folder without a manifest) is exported
again from the checkpoint, which is the trust root: the cache is derived data, so the demo repairs it with a warning
instead of stopping. The export is staged and renamed into place only when complete (``export.bundle``), so an
interrupted export never looks like a bundle; a lock file serialises concurrent demos exporting the same key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import BundleError, ConfigError

log = logging.getLogger(__name__)

BUNDLES_DIR = "bundles"
SOURCES = ("cache", "exported", "given")  # where the bundle a demo runs came from

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BundleChoice:
    """The bundle a demo runs and how it was obtained.

    ``source`` is ``cache`` (a verified cached bundle reused), ``exported`` (exported now into the cache) or
    ``given`` (``--bundle DIR``); ``replaced`` says why a cached bundle was not reused (``None`` if none was there).
    """

    path: Path
    source: str
    key: str | None = None
    replaced: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"path": str(self.path), "source": self.source, "key": self.key, "replaced": self.replaced}


def bundles_dir() -> Path:
    from ..model.default import cache_root

    return cache_root() / BUNDLES_DIR


def _model_name(model_dir: Path) -> str:
    try:
        name = json.loads((model_dir / "config.json").read_text()).get("name") or "uniecg"
    except (OSError, ValueError, AttributeError):
        name = "uniecg"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))[:64]


def bundle_key(model_dir: Path, checkpoint_sha: str, precision: str) -> str:
    """The cache folder name of ``model_dir`` (whose checksum is ``checkpoint_sha``) at ``precision``."""
    from ..export.quantize import cache_tag

    return f"{_model_name(model_dir)}-{checkpoint_sha[:16]}-{precision}-{cache_tag()}"


def cached_bundle_problem(path: Path, checkpoint_sha: str, precision: str) -> str | None:
    """Why the bundle at ``path`` may not be reused (one line), or ``None`` when it verifies and matches."""
    from ..export.bundle import load_bundle

    if not path.exists():
        return "absent"
    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        return str(exc)
    manifest = bundle.manifest
    source_sha = (manifest.get("source_model") or {}).get("sha256")
    if source_sha != checkpoint_sha:
        return f"{path}: made from another checkpoint (sha256 {str(source_sha)[:12]}…)"
    if bundle.precision != precision:
        return f"{path}: precision {bundle.precision}, not {precision}"
    if manifest.get("package_version") != __version__:
        return f"{path}: exported by uniecg-edge {manifest.get('package_version')}, not {__version__}"
    return None


@contextlib.contextmanager
def _exclusive(lock_path: Path, progress: Progress) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (POSIX ``flock``; without ``fcntl`` no lock is taken)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent demos then race, and the loser's export fails loudly
        yield
        return
    with open(lock_path, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another uniecg-edge is exporting into {lock_path.parent}; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale_partials(parent: Path, key: str) -> None:
    """Staging folders of this key left by an export that was killed (we hold the key's lock, so none is live)."""
    for stale in parent.glob(f".{key}.partial-*"):
        log.info("removing %s, left by an interrupted export", stale)
        shutil.rmtree(stale, ignore_errors=True)


def _quiet_hub_progress() -> None:
    """One line per export step: no transformers / hub progress bars in between (as ``uniecg-edge export``)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def ensure_cached_bundle(model_dir: str | Path | None, precision: str, progress: Progress | None = None,
                         *, root: Path | None = None) -> BundleChoice:
    """A verified bundle of ``model_dir`` (default: the default model) at ``precision``, from the cache or exported
    into it now. ``progress`` receives one-line messages (what was decided, the export's steps)."""
    from ..export.exporter import PRECISIONS, ExportOptions, export_bundle
    from ..model.default import default_model_dir
    from ..model.uniecg import checkpoint_sha256

    say = progress or log.info
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    source = Path(model_dir) if model_dir is not None else default_model_dir()
    if not (source / "config.json").is_file():
        raise ConfigError(f"{source}: not a UniECG checkpoint folder (no config.json)")
    checkpoint_sha = checkpoint_sha256(source)
    key = bundle_key(source, checkpoint_sha, precision)
    parent = root if root is not None else bundles_dir()
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / key
    with _exclusive(parent / f".{key}.lock", say):
        problem = cached_bundle_problem(target, checkpoint_sha, precision)
        if problem is None:
            say(f"using the cached {precision} bundle {target}")
            log.info("bundle cache hit: %s", target)
            return BundleChoice(target, "cache", key)
        _remove_stale_partials(parent, key)
        replaced = None
        if problem == "absent":
            say(f"no cached {precision} bundle of {source.name} yet: exporting one into {target} "
                "(once; later demos reuse it)")
        else:
            replaced = problem
            log.warning("the cached bundle is unusable and is exported again: %s", problem)
            say(f"the cached bundle cannot be used ({problem}); exporting it again")
            if not target.is_dir() or target.is_symlink():
                target.unlink()
        _quiet_hub_progress()
        export_bundle(target, source, ExportOptions(precision=precision, overwrite=target.exists()), progress=say)
        log.info("bundle cache miss: exported %s", target)
        return BundleChoice(target, "exported", key, replaced)
