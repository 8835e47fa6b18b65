"""The trained edge model shipped inside the package (``uniecg_edge/data/models/<name>/``).

The folder is a :class:`~uniecg_edge.model.uniecg.UniEcgModel` checkpoint plus ``MODEL_CARD.md`` and
``SHA256SUMS`` (``<sha256>  <relative path>`` per file, the card and the sums file excluded). Every file is checked
against the sums before the folder is handed out, so a damaged or edited installation fails in one line instead
of producing different reports; a file that is not listed is refused too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import BundleError
from ..export.bundle import sha256_file

log = logging.getLogger(__name__)

SHIPPED_NAME = "uniecg-edge-student"
MODELS_DIR = Path(__file__).resolve().parent.parent / "data" / "models"
SUMS_FILE = "SHA256SUMS"
CARD_FILE = "MODEL_CARD.md"
UNCHECKED = frozenset({SUMS_FILE, CARD_FILE})


def shipped_model_dir() -> Path:
    return MODELS_DIR / SHIPPED_NAME


def is_shipped() -> bool:
    """Whether this installation carries the trained model (a source tree before training does not)."""
    return (shipped_model_dir() / SUMS_FILE).is_file()


def _checked_files(folder: Path) -> list[Path]:
    files = (p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(p for p in files if p.relative_to(folder).as_posix() not in UNCHECKED)


def write_sums(folder: Path) -> Path:
    """Write ``SHA256SUMS`` for every file of ``folder`` (the card and the sums file aside)."""
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}" for p in _checked_files(folder)]
    target = folder / SUMS_FILE
    target.write_text("\n".join(lines) + "\n")
    return target


def read_sums(folder: Path) -> dict[str, str]:
    sums_path = folder / SUMS_FILE
    if not sums_path.is_file():
        raise BundleError(f"{folder}: {SUMS_FILE} missing: cannot verify the model's files")
    sums: dict[str, str] = {}
    for number, line in enumerate(sums_path.read_text().splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise BundleError(f"{sums_path}:{number}: not '<sha256>  <path>'")
        sums[name] = digest
    return sums


def verify_model_folder(folder: Path) -> Path:
    """Check every file of ``folder`` against its ``SHA256SUMS``; one-line :class:`BundleError` on a mismatch."""
    sums = read_sums(folder)
    present = {p.relative_to(folder).as_posix(): p for p in _checked_files(folder)}
    for name in sorted(set(present) - set(sums)):
        raise BundleError(f"{folder / name}: not listed in {SUMS_FILE} (added or renamed after packaging)")
    for name, digest in sums.items():
        path = present.get(name)
        if path is None:
            raise BundleError(f"{folder / name}: listed in {SUMS_FILE} but missing")
        if sha256_file(path) != digest:
            raise BundleError(f"{folder / name}: sha256 differs from {SUMS_FILE} (file damaged or modified)")
    return folder


def verified_shipped_model() -> Path:
    """The shipped model's folder, verified."""
    folder = shipped_model_dir()
    verify_model_folder(folder)
    log.debug("shipped model verified: %s", folder)
    return folder
