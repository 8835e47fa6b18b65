"""uniecg-edge: UniECG (ECG interpretation and text-to-ECG generation) on bedside NVIDIA Jetson devices.

Importing the package is cheap: torch, transformers and onnxruntime load only when a model is used.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
