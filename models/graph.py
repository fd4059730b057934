"""Load-time rewrites of ONNX patterns that ONNX Runtime runs slowly, with identical results.

YOLOv8/YOLO11 detect heads (every Ultralytics export, user-trained ones included) end in a DFL
block: Reshape to (B, 4, R, N) -> Transpose to (B, R, 4, N) -> Softmax over R (axis 1) ->
1x1 Conv R -> 1. ONNX Runtime computes a softmax over a middle axis by transposing it to the
end and back, which made this one node ~5% of YOLOv8n's time at 640x384 (its profiler, one
thread: 4.0 ms of 75). `faster_dfl` transposes R to the end once, where the softmax wants
it, and turns the 1x1 conv into a MatMul over that axis (0.8 ms together).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import helper, numpy_helper

# The perm that brings (B, 4, R, N) to (B, R, 4, N), and its replacement to (B, 4, N, R).
_DFL_PERM = [0, 2, 1, 3]
_LAST_AXIS_PERM = [0, 1, 3, 2]
_SOFTMAX_LAST_AXIS_OPSET = 13  # before 13, Softmax(axis=1) normalised over all dims from 1 on


def _attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _set_attribute(node: onnx.NodeProto, name: str, value: object) -> None:
    kept = [attr for attr in node.attribute if attr.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value)])


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _is_pointwise_to_one(conv: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> bool:
    """A bias-free 1x1 convolution from R channels to one, with its weights in the graph."""
    if conv.op_type != "Conv" or len(conv.input) != 2 or conv.input[1] not in weights:
        return False
    dims = list(weights[conv.input[1]].dims)
    return (
        len(dims) == 4
        and dims[0] == 1
        and dims[2:] == [1, 1]
        and _attribute(conv, "group", 1) == 1
        and _attribute(conv, "strides", [1, 1]) == [1, 1]
        and _attribute(conv, "dilations", [1, 1]) == [1, 1]
        and _attribute(conv, "pads", [0, 0, 0, 0]) == [0, 0, 0, 0]
    )


def faster_dfl(model: onnx.ModelProto) -> int:
    """Rewrite every DFL block of the model in place; returns how many were rewritten."""
    if _default_opset(model) < _SOFTMAX_LAST_AXIS_OPSET:
        return 0
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only_consumer(name: str) -> onnx.NodeProto | None:
        found: Sequence[onnx.NodeProto] = consumers.get(name, [])
        return found[0] if len(found) == 1 and name not in outputs else None

    rewritten = 0
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        transpose = producer.get(softmax.input[0])
        conv = only_consumer(softmax.output[0])
        if (
            transpose is None
            or transpose.op_type != "Transpose"
            or _attribute(transpose, "perm") != _DFL_PERM
            or only_consumer(transpose.output[0]) is not softmax
            or _attribute(softmax, "axis", -1) != 1
            or conv is None
            or not _is_pointwise_to_one(conv, weights)
        ):
            continue
        _set_attribute(transpose, "perm", _LAST_AXIS_PERM)
        _set_attribute(softmax, "axis", 3)
        kernel = numpy_helper.to_array(weights[conv.input[1]])  # (1, R, 1, 1)
        column = f"{conv.name or conv.output[0]}/dfl_column"
        graph.initializer.append(numpy_helper.from_array(kernel.reshape(1, -1).T.copy(), column))
        expected = f"{conv.output[0]}/dfl_expected"  # (B, 4, N, 1)
        matmul = helper.make_node("MatMul", [softmax.output[0], column], [expected])
        back = helper.make_node("Transpose", [expected], [conv.output[0]], perm=[0, 3, 1, 2])
        index = list(graph.node).index(conv)
        graph.node.remove(conv)
        graph.node.insert(index, back)
        graph.node.insert(index, matmul)
        rewritten += 1
    if rewritten:  # drop the replaced kernels, as ONNX Runtime would (with a warning)
        used = {name for node in graph.node for name in node.input}
        used |= {i.name for i in graph.input}
        for tensor in [t for t in graph.initializer if t.name not in used]:
            graph.initializer.remove(tensor)
    return rewritten
