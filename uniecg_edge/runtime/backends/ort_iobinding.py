"""The decoder's KV cache on the device with onnxruntime IO binding (edge-facts §4: "IO binding keeps inputs/
outputs (the KV cache) on the GPU").

Each step binds the new token's embedding, the attention mask and the position from host memory, binds the
previous step's ``present.*`` OrtValues (still on the device) as ``past_key_values.*``, lets onnxruntime allocate
the new ``present.*`` on the device and copies only the logits and hidden state back to the host. One binding
object and the empty prefill cache are allocated once. With ``device_type="cpu"`` the same code runs on the CPU,
which is how the tests exercise it without a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..generation import EMBEDS, HIDDEN, LOGITS, MASK, POSITIONS, DecoderGraph
from .ort_backend import OrtGraph


class IoBindingKvDecoder:
    """A :class:`~.base.KvDecoder` whose cache stays in onnxruntime OrtValues on ``device_type``."""

    def __init__(self, graph: OrtGraph, device_type: str = "cuda", device_id: int = 0) -> None:
        import onnxruntime as ort

        self.graph = graph
        self.session = graph.session
        self.layout = DecoderGraph(graph)
        self.device_type, self.device_id = device_type, device_id
        self.binding = self.session.io_binding()
        shape = (1, self.layout.kv_heads, 0, self.layout.head_dim)
        self._empty = [ort.OrtValue.ortvalue_from_shape_and_type(shape, self.layout.past_dtype, device_type,
                                                                 device_id)
                       for _ in self.layout.past_names]
        self._past: list[Any] = self._empty
        self._dtypes = {i.name: i.dtype for i in graph.inputs}

    def prefill(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
                position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._past = self._empty
        return self.step(inputs_embeds, attention_mask, position_ids)

    def step(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray,
             position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        binding = self.binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for name, value in zip((EMBEDS, MASK, POSITIONS), (inputs_embeds, attention_mask, position_ids), strict=True):
            binding.bind_cpu_input(name, np.ascontiguousarray(value, dtype=self._dtypes[name]))
        for name, value in zip(self.layout.past_names, self._past, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(LOGITS, "cpu")
        binding.bind_output(HIDDEN, "cpu")
        for name in self.layout.present_names:
            binding.bind_output(name, self.device_type, self.device_id)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        self._past = list(outputs[2:])
        logits, hidden = outputs[0].numpy(), outputs[1].numpy()
        return logits[0, -1], hidden[0, -1]
