"""Convert a Darknet YOLO (cfg + weights) to ONNX with the head decoded inside the graph.

The graph takes `images` (B, 3, H, W) float32 RGB in [0, 1] with dynamic batch, height and
width (multiples of 32), and returns `output0` (B, 4 + nc, N) in the common output contract:
cx, cy, w, h in input pixels, then objectness x class probability per class. The YOLO grid is
built from the runtime feature-map shape, so any input size works without re-export.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.darknet_cfg import Conv, MaxPool, Network, Route, Upsample, Yolo
from models.errors import ModelError

CONVERTER_VERSION = "1"
OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.14
BN_EPS = 1e-5  # darknet: (x - mean) / sqrt(var + .00001)
LEAKY_SLOPE = 0.1


class _Weights:
    """Sequential reader over a .weights file body; every float must be consumed."""

    def __init__(self, data: bytes) -> None:
        major, minor, _revision = np.frombuffer(data, "<i4", 3)
        seen_bytes = 8 if major * 10 + minor >= 2 else 4
        self._floats = np.frombuffer(data, "<f4", offset=12 + seen_bytes)
        self._pos = 0

    def take(self, count: int) -> np.ndarray:
        if self._pos + count > self._floats.size:
            raise ModelError("darknet weights: file is shorter than the cfg requires")
        out = self._floats[self._pos : self._pos + count]
        self._pos += count
        return out

    def check_consumed(self) -> None:
        left = self._floats.size - self._pos
        if left:
            raise ModelError(f"darknet weights: {left} floats left unread; cfg and weights differ")


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: np.ndarray | list[int] | list[float], hint: str = "c") -> str:
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs: object) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _conv(g: _Graph, x: str, c_in: int, layer: Conv, weights: _Weights) -> str:
    n = layer.filters
    bias = weights.take(n).copy()
    if layer.batch_normalize:
        gamma, mean, var = weights.take(n), weights.take(n), weights.take(n)
        scale = gamma / np.sqrt(var + BN_EPS)
        bias = bias - mean * scale
    kernel = weights.take(n * c_in * layer.size * layer.size).reshape(
        n, c_in, layer.size, layer.size
    )
    if layer.batch_normalize:
        kernel = kernel * scale[:, None, None, None]
    p = layer.padding
    y = g.op(
        "Conv",
        x,
        g.const(kernel.astype(np.float32), "w"),
        g.const(bias.astype(np.float32), "b"),
        kernel_shape=[layer.size, layer.size],
        strides=[layer.stride, layer.stride],
        pads=[p, p, p, p],
    )
    return g.op("LeakyRelu", y, alpha=LEAKY_SLOPE) if layer.activation == "leaky" else y


def _route(g: _Graph, layer: Route, outs: list[str], chans: list[int]) -> tuple[str, int]:
    parts, total = [], 0
    for i in layer.layers:
        part = chans[i] // layer.groups
        start = part * layer.group_id
        x = outs[i]
        if layer.groups > 1:
            x = g.op("Slice", x, g.const([start]), g.const([start + part]), g.const([1]))
        parts.append(x)
        total += part
    return (parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)), total


def _maxpool(g: _Graph, x: str, layer: MaxPool) -> str:
    # Darknet pads size-1 in total, offset -pad/2: out = (w + pad - size) / stride + 1.
    pad = layer.size - 1
    begin, end = pad // 2, pad - pad // 2
    return g.op(
        "MaxPool",
        x,
        kernel_shape=[layer.size, layer.size],
        strides=[layer.stride, layer.stride],
        pads=[begin, begin, end, end],
    )


def _yolo(g: _Graph, x: str, images: str, layer: Yolo) -> str:
    """Decode one head to (B, 4 + nc, A * h * w) in input-pixel coordinates."""
    a, nc = len(layer.anchors), layer.classes
    p = g.op("Reshape", x, g.const([0, a, 5 + nc, -1]))  # (B, A, 5 + nc, h*w)

    # Grid offsets and stride from the runtime shapes: (2, h*w) rows gx, gy.
    fm_hw = g.op("Shape", x, start=2, end=4)
    w = g.op("Squeeze", g.op("Slice", fm_hw, g.const([1]), g.const([2])), g.const([0]))
    hw = g.op("ReduceProd", fm_hw, keepdims=0)
    idx = g.op("Range", g.const(np.int64(0)), hw, g.const(np.int64(1)))
    gx = g.op("Unsqueeze", g.op("Mod", idx, w), g.const([0]))
    gy = g.op("Unsqueeze", g.op("Div", idx, w), g.const([0]))
    grid = g.op("Cast", g.op("Concat", gx, gy, axis=0), to=TensorProto.FLOAT)
    in_hw = g.op("Cast", g.op("Shape", images, start=2, end=4), to=TensorProto.FLOAT)
    stride_hw = g.op("Div", in_hw, g.op("Cast", fm_hw, to=TensorProto.FLOAT))
    stride_xy = g.op("Reshape", g.op("Gather", stride_hw, g.const([1, 0])), g.const([2, 1]))

    def channels(start: int, end: int) -> str:
        return g.op("Slice", p, g.const([start]), g.const([end]), g.const([2]))

    s = layer.scale_x_y
    xy = g.op("Sigmoid", channels(0, 2))
    if s != 1.0:  # YOLOv4 grid sensitivity: sigmoid * s - (s - 1) / 2
        xy = g.op("Add", g.op("Mul", xy, g.const(np.float32(s))), g.const(np.float32(-(s - 1) / 2)))
    xy = g.op("Mul", g.op("Add", xy, grid), stride_xy)
    anchors = np.asarray(layer.anchors, np.float32).reshape(a, 2, 1)
    wh = g.op("Mul", g.op("Exp", channels(2, 4)), g.const(anchors, "anchors"))
    obj = g.op("Sigmoid", channels(4, 5))
    cls = g.op("Mul", obj, g.op("Sigmoid", channels(5, 5 + nc)))
    head = g.op("Concat", xy, wh, cls, axis=2)  # (B, A, 4 + nc, h*w)
    head = g.op("Transpose", head, perm=[0, 2, 1, 3])
    return g.op("Reshape", head, g.const([0, 4 + nc, -1]))


def convert(net: Network, weights: bytes, class_names: list[str]) -> onnx.ModelProto:
    g = _Graph()
    images = "images"
    outs: list[str] = []
    chans: list[int] = []
    heads: list[str] = []
    reader = _Weights(weights)
    x, c = images, net.channels
    for layer in net.layers:
        match layer:
            case Conv():
                x, c = _conv(g, x, c, layer, reader), layer.filters
            case Route():
                x, c = _route(g, layer, outs, chans)
            case MaxPool():
                x = _maxpool(g, x, layer)
            case Upsample():
                s = float(layer.stride)
                x = g.op("Resize", x, "", g.const([1.0, 1.0, s, s]), mode="nearest")
            case Yolo():
                if layer.classes != len(class_names):
                    raise ModelError(
                        f"darknet cfg has {layer.classes} classes, names file has "
                        f"{len(class_names)}"
                    )
                heads.append(_yolo(g, x, images, layer))  # passes x through for routes
        outs.append(x)
        chans.append(c)
    reader.check_consumed()
    if not heads:
        raise ModelError("darknet cfg has no [yolo] layer")

    nc = len(class_names)
    g.nodes.append(helper.make_node("Concat", heads, ["output0"], axis=2))
    graph = helper.make_graph(
        g.nodes,
        "darknet_yolo",
        [helper.make_tensor_value_info(images, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + nc, "anchors"])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="streetwatch-darknet",
        producer_version=CONVERTER_VERSION,
        ir_version=IR_VERSION,
    )
    # The same metadata keys an Ultralytics export carries, so the bare file is self-describing.
    helper.set_model_props(
        model,
        {
            "names": repr(dict(enumerate(class_names))),
            "imgsz": repr([net.height, net.width]),
            "stride": "32",
            "task": "detect",
        },
    )
    onnx.checker.check_model(model)
    return model
