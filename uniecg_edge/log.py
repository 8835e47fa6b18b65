"""Logging set-up for the command line. Library code only calls ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging
import os

VERBOSITY_ENV = "UNIECG_EDGE_VERBOSITY"


def configure(level: str | int | None = None) -> None:
    """Send the package's log records to stderr at ``level`` (default: $UNIECG_EDGE_VERBOSITY or WARNING)."""
    chosen = level if level is not None else os.environ.get(VERBOSITY_ENV, "WARNING")
    if isinstance(chosen, str):
        chosen = chosen.upper()
    root = logging.getLogger("uniecg_edge")
    root.setLevel(chosen)
    if not any(getattr(h, "_uniecg_cli", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._uniecg_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
