"""``uniecg-edge demo``: the whole chain on a laptop, no hardware (see ``session``).

``bundle_cache`` keeps one verified edge bundle per checkpoint, precision and package version; ``console`` prints a
line per live event; ``summary`` sums the run up. Importing this package loads no model library.
"""

from __future__ import annotations

from .bundle_cache import BundleChoice, bundle_key, cached_bundle_problem, ensure_cached_bundle
from .session import DemoConfig, DemoPaths, check_output, check_record, prepare_output, run_demo, running_simulator

__all__ = [
    "BundleChoice", "DemoConfig", "DemoPaths", "bundle_key", "cached_bundle_problem", "check_output", "check_record",
    "ensure_cached_bundle", "prepare_output", "run_demo", "running_simulator",
]
