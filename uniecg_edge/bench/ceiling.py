"""The bandwidth ceiling of batch-1 decoding: tokens/s <= memory bandwidth / bytes read per token.

Each decode step reads every weight of the decoder once and the whole KV cache once (edge-facts §8), so

    bytes per step    = weight bytes + batch x KV-cache bytes at the context length
    ceiling tokens/s  = batch x bandwidth / bytes per step

The weight bytes come from the graph itself where there is one (:func:`onnx_weight_bytes`: every initializer
at its stored size, int4 blocks and their scales included; a table read by ``Gather`` counts one row per token)
or from the precision's bytes per weight (:func:`weight_bytes_per_token`). The bandwidth is measured on the
machine (:mod:`.bandwidth`) or taken from :data:`DEVICE_PROFILES` (Jetson data-sheet figures).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..registry import Registry


@dataclass(frozen=True)
class DeviceProfile:
    """A module whose memory bandwidth is known from its data sheet."""

    name: str
    label: str
    bandwidth_gb_s: float
    memory_gb: float
    note: str = ""


DEVICE_PROFILES: Registry[DeviceProfile] = Registry("device profile")
for _profile in (
    DeviceProfile("agx-orin", "Jetson AGX Orin 64GB", 204.8, 64, "256-bit LPDDR5"),
    DeviceProfile("orin-nx", "Jetson Orin NX 16GB", 102.4, 16, "128-bit LPDDR5; data-sheet value"),
    DeviceProfile("orin-nano", "Jetson Orin Nano 8GB", 68.0, 8, "original mode (JetPack 6.0 and before)"),
    DeviceProfile("orin-nano-super", "Jetson Orin Nano 8GB Super", 102.0, 8, "MAXN_SUPER (JetPack 6.1 and later)"),
    DeviceProfile("thor", "Jetson AGX Thor T5000 128GB", 273.0, 128, "about 273 GB/s; data-sheet value"),
):
    DEVICE_PROFILES.add(_profile.name, _profile)

# Bytes per weight of a linear layer at each precision, before block scales.
BYTES_PER_WEIGHT: dict[str, float] = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}


def weight_bytes_per_token(params: float, precision: str, *, block_size: int | None = None,
                           scale_bytes: int = 4) -> float:
    """Bytes of ``params`` weights at ``precision`` (:data:`BYTES_PER_WEIGHT`); with ``block_size``, int4 adds one
    ``scale_bytes`` scale per block (block 32, fp32 scales: 0.5 + 4 / 32 = 0.625 bytes per weight)."""
    if precision not in BYTES_PER_WEIGHT:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(BYTES_PER_WEIGHT)})")
    per_weight = BYTES_PER_WEIGHT[precision]
    if precision == "int4" and block_size:
        per_weight += scale_bytes / block_size
    return params * per_weight


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, context: int, *, batch: int = 1,
                   dtype_bytes: int = 4) -> int:
    """Bytes of the keys and values of ``context`` positions for ``batch`` sequences (read once per step)."""
    return 2 * num_layers * num_kv_heads * head_dim * context * batch * dtype_bytes


@dataclass(frozen=True)
class Ceiling:
    """The bandwidth bound of one decoder at one context length and batch size."""

    weight_bytes: int
    kv_bytes: int  # for the whole batch
    batch: int
    bandwidth_gb_s: float
    bandwidth_source: str  # "measured" or a device profile name

    @property
    def bytes_per_step(self) -> int:
        return self.weight_bytes + self.kv_bytes

    @property
    def bytes_per_token(self) -> float:
        return self.bytes_per_step / self.batch

    @property
    def tokens_per_s(self) -> float:
        return self.batch * self.bandwidth_gb_s * 1e9 / self.bytes_per_step

    def fraction(self, measured_tokens_per_s: float) -> float:
        """The measured decode rate as a fraction of the ceiling."""
        return measured_tokens_per_s / self.tokens_per_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes_per_token": self.bytes_per_token, "ceiling_tokens_per_s": self.tokens_per_s}


def decoder_ceiling(weight_bytes: int, kv_bytes_per_sequence: int, bandwidth_gb_s: float, *, batch: int = 1,
                    bandwidth_source: str = "measured") -> Ceiling:
    if bandwidth_gb_s <= 0:
        raise ValueError("bandwidth must be positive")
    return Ceiling(weight_bytes=int(weight_bytes), kv_bytes=int(kv_bytes_per_sequence) * batch, batch=batch,
                   bandwidth_gb_s=float(bandwidth_gb_s), bandwidth_source=bandwidth_source)


CEILING_COMPARISON_PREFIX = "ceiling_fraction_"


def judge_at_highest_bandwidth(comparisons: dict[str, Any], start_gb_s: float, end_gb_s: float | None
                               ) -> dict[str, Any]:
    """Ceiling comparisons judged against the higher of the bandwidth probes taken at the start and the end of a run.

    A shared or virtual machine's streaming bandwidth drifts (on the development VM the same probe read 45 and
    77 GB/s within minutes), and a ceiling from the lower reading flatters the decoder. The rows keep the start
    probe's ceiling; a comparison's verdict uses the tighter one: its fraction scales by start / highest.
    """
    highest = max(start_gb_s, end_gb_s or 0.0)
    if highest <= start_gb_s:
        return comparisons
    out: dict[str, Any] = {}
    for key, item in comparisons.items():
        if not key.startswith(CEILING_COMPARISON_PREFIX) or item.get("value") is None:
            out[key] = item
            continue
        value = item["value"] * start_gb_s / highest
        out[key] = {**item, "value": value, "value_at_start_bandwidth": item["value"], "bandwidth_gb_s": highest,
                    "passed": value >= item["target"],
                    "label": f"{item['label']}; judged at the higher bandwidth probe, {highest:.1f} GB/s "
                             f"(start: {start_gb_s:.1f})"}
    return out


TABLE_OPS = ("Gather", "GatherBlockQuantized")  # a token table: one row per token is read, not the table


def onnx_weight_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes an ONNX graph reads from its weights per call with one token: every initializer at its stored size
    (external data included, not loaded), except tables that only ``Gather`` reads, which count one row."""
    import numpy as np
    import onnx
    from onnx import helper

    model = onnx.load(str(Path(path)), load_external_data=False)
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    total = 0
    for tensor in model.graph.initializer:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        count = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
        size = count * itemsize
        ops = consumers.get(tensor.name, set())
        if ops and ops <= set(TABLE_OPS) and len(tensor.dims) >= 2 and tensor.dims[0] > 0:
            size //= int(tensor.dims[0])
        total += size
    return total


def torch_weight_bytes(llm: Any) -> int:
    """Bytes a transformers causal LM reads per token: its parameters (tied ones once), the input embedding table
    counted as one row unless it is also the output projection."""
    embed = llm.get_input_embeddings().weight
    output = llm.get_output_embeddings()
    tied = output is not None and output.weight.data_ptr() == embed.data_ptr()
    seen: set[int] = set()
    total = 0
    for tensor in llm.parameters():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        size = tensor.numel() * tensor.element_size()
        if tensor.data_ptr() == embed.data_ptr() and not tied:
            size //= int(embed.shape[0])
        total += size
    return total
