"""ONNX export of UniECG into a checksummed edge bundle (DESIGN.md §3).

``export_bundle`` exports every graph spec (``spec.GRAPH_SPECS``), checks each against PyTorch on real ECGs
(``parity``), checks greedy decoding through the graphs (``onnx_generate``) and writes the bundle atomically
(``bundle``); ``load_bundle`` opens one, verifying every checksum. Importing this package does not import torch.
"""

from __future__ import annotations

from .bundle import Bundle, load_bundle
from .exporter import PRECISIONS, ExportOptions, export_bundle
from .spec import GRAPH_ORDER, GRAPH_SPECS, GraphSpec, TensorSpec, graph_specs

__all__ = [
    "GRAPH_ORDER", "GRAPH_SPECS", "PRECISIONS", "Bundle", "ExportOptions", "GraphSpec", "TensorSpec",
    "export_bundle", "graph_specs", "load_bundle",
]
