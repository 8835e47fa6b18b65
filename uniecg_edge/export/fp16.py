"""fp16 conversion that keeps the numerically sensitive parts of a graph in fp32.

``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)`` with a block list, then two
repairs of its output: the fp16 round trips it inserts between two blocked nodes are removed (otherwise a chain
kept in fp32, such as a rotary phase, is still rounded to fp16 at each step), and the nodes are put back in
topological order (the converter appends its input casts last; onnx's checker and TensorRT's parser refuse that).
Reported converter failures: NaN from norm statistics, invalid graphs around Resize (reference/edge-facts.md §4).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

# Norm statistics (x**2 and its mean overflow fp16 above |x| ~ 256), whole-norm ops, Softmax (exp of large scores),
# the index and resampling paths (Range, CumSum, Resize's float scales), and onnxruntime's own default list.
FP16_BLOCKED_OPS = (
    "Pow", "ReduceMean", "ReduceSumSquare", "Sqrt", "Reciprocal", "LayerNormalization", "GroupNormalization",
    "InstanceNormalization", "Softmax", "Range", "CumSum", "Resize", "Upsample", "Cos", "Sin", "Exp",
    "RandomNormalLike", "RandomUniformLike", "TopK", "Min", "Max",
)
# Every node whose output flows into a Cos or Sin computes a phase (rotary positions * inverse frequencies, a
# diffusion timestep * frequencies): fp16 keeps ~3 significant digits, so position 1500 would be off by ~1 rad.
_PHASE_SINKS = ("Cos", "Sin")
# The ``+ eps`` after a norm's mean: an fp16 eps below 6e-5 is subnormal or zero.
_NORM_STATS = ("ReduceMean",)


def name_nodes(model: Any) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def fp16_blocked_nodes(model: Any) -> list[str]:
    """Names of the nodes that must stay fp32 beyond ``FP16_BLOCKED_OPS``: phase paths and ``+ eps`` after means."""
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    blocked: set[str] = set()
    stack = [node for node in model.graph.node if node.op_type in _PHASE_SINKS]
    while stack:
        node = stack.pop()
        for name in node.input:
            parent = producer.get(name)
            if parent is not None and parent.name not in blocked:
                blocked.add(parent.name)
                stack.append(parent)
    for node in model.graph.node:
        if node.op_type in _NORM_STATS:
            blocked.update(c.name for c in consumers.get(node.output[0], []) if c.op_type in ("Add", "Sub"))
    return sorted(blocked)


def drop_cast_round_trips(model: Any) -> int:
    """Remove ``Cast(fp16) -> Cast(fp32)`` pairs on fp32 values; return how many consumers were rewired.

    The float16 converter casts every blocked node's output to fp16 and back, even between two blocked nodes, so a
    chain kept in fp32 (a rotary phase) would still be rounded to fp16 at each step: 1e-2 error at position 1500.
    """
    import onnx

    float_values = {v.name for v in list(model.graph.value_info) + list(model.graph.input)
                    if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    float_values |= {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    float_values |= {n.output[0] for n in model.graph.node if _cast_to(n) == onnx.TensorProto.FLOAT}
    graph_outputs = {o.name for o in model.graph.output}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    rename: dict[str, str] = {}
    dead: set[int] = set()
    for node in model.graph.node:
        if _cast_to(node) != onnx.TensorProto.FLOAT16 or node.input[0] not in float_values:
            continue
        users = consumers.get(node.output[0], [])
        for user in users:
            if _cast_to(user) == onnx.TensorProto.FLOAT and user.output[0] not in graph_outputs:
                rename[user.output[0]] = node.input[0]
                dead.add(id(user))
        if all(id(u) in dead for u in users) and node.output[0] not in graph_outputs:
            dead.add(id(node))
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    keep = [n for n in model.graph.node if id(n) not in dead]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return len(rename)


def sort_topologically(graph: Any) -> None:
    """Order ``graph.node`` so every node follows its inputs' producers (the converter appends its input casts
    last; onnx's checker and TensorRT's parser want producers first). Keeps the original order where it can."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[Any] = []
    while pending:
        progress = False
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
                progress = True
            else:
                rest.append(node)
        if not progress:
            raise ConfigError(f"graph {graph.name!r} has a cycle or an input no node produces: "
                              f"{rest[0].name} needs {sorted(set(rest[0].input) - available)[:3]}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def _cast_to(node: Any) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((a.i for a in node.attribute if a.name == "to"), None)


def convert_to_fp16(model: Any, infer_shapes: bool = True) -> tuple[Any, list[str], int]:
    """``model`` (fp32 ``ModelProto``) in fp16 with fp32 inputs and outputs; also what stayed fp32 and how many
    initializers became fp16. ``infer_shapes=False`` for models over 2 GB (the converter then trusts value_info)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    name_nodes(model)
    if infer_shapes:
        model = onnx.shape_inference.infer_shapes(model)
    op_block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_BLOCKED_OPS))
    node_block = fp16_blocked_nodes(model)
    present = {n.op_type for n in model.graph.node}
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=op_block,
                                         node_block_list=node_block, disable_shape_infer=True)
    drop_cast_round_trips(converted)
    sort_topologically(converted.graph)
    n_fp16 = sum(1 for t in converted.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    excluded = [f"op {op}" for op in op_block if op in present] + [f"node {n}" for n in node_block]
    return converted, excluded, n_fp16
