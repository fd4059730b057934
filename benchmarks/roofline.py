"""How close a model's inference comes to the CPU's float peak, on one thread.

A model's work is the multiply-adds of its convolutions at a given input (from ONNX shape
inference). The peak is ONNX Runtime's own rate on a large 3x3 convolution, the kernel those
models spend most of their time in (within ~5% of single-threaded OpenBLAS SGEMM here). One
thread, because that is how the engine runs each frame, and because on this shared VM two
busy threads are at times slowed by the host, which made any two-core peak unrepeatable. A
model running near the peak has nothing left to gain from scheduling, only from less work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper, shape_inference

from benchmarks.common import per_call_ms, table
from detector.engine import Engine

PEAK_CHANNELS, PEAK_SIZE = 256, 32  # 1.2 GFLOP a run: large enough to reach the kernel's rate


def conv_gflop(path: Path, width: int, height: int) -> float:
    """Billions of float operations (2 per multiply-add) in the model's convolutions for one
    width x height frame."""
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, height, width), strict=True):
        dim.Clear()
        dim.dim_value = value
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {v.name: v.type.tensor_type.shape.dim for v in model.graph.value_info}
    shapes |= {v.name: v.type.tensor_type.shape.dim for v in model.graph.output}
    kernels = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        out = [d.dim_value for d in shapes[node.output[0]]]
        if 0 in out:  # dim_value 0: not inferred
            raise ValueError(f"{path}: shape inference left {node.name} unsized")
        # per output element: input channels per group x kernel height x kernel width
        macs += int(np.prod(out)) * int(np.prod(kernels[node.input[1]][1:]))
    return 2 * macs / 1e9


def _peak_session() -> tuple[ort.InferenceSession, dict[str, np.ndarray], float]:
    c, s = PEAK_CHANNELS, PEAK_SIZE
    rng = np.random.default_rng(0)
    kernel = numpy_helper.from_array(rng.normal(0, 0.05, (c, c, 3, 3)).astype(np.float32), "w")
    shape = [1, c, s, s]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "peak",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [kernel],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts)
    feeds = {"x": rng.random(shape, np.float32)}
    return session, feeds, 2 * c * c * 9 * s * s / 1e9


def roofline(models: dict[str, tuple[Engine, np.ndarray]], runs: int) -> str:
    """A table: per model (label -> engine with single-threaded runs, one input tensor), its
    convolution GFLOP, ms per frame on one thread, and the share of the peak it reaches.
    The peak and the models take turns within each run; the best of the runs for each, since
    interference from the host only ever slows a run down (timeit's reasoning)."""
    session, feeds, peak_gflop = _peak_session()
    peak: list[float] = []
    ms: dict[str, list[float]] = {label: [] for label in models}
    for _ in range(runs):
        peak.append(peak_gflop * 1e3 / per_call_ms(lambda: session.run(None, feeds), 8, 1))
        for label, (engine, tensor) in models.items():
            ms[label].append(per_call_ms(lambda e=engine, t=tensor: e.infer(t), 5, 1))
    best = max(peak)
    rows = []
    for label, (engine, tensor) in models.items():
        h, w = tensor.shape[2:]
        gflop = conv_gflop(engine.model_path, w, h)
        t = min(ms[label])
        rate = gflop * 1e3 / t
        rows.append(
            [label, f"{w}x{h}", f"{gflop:.2f}", f"{t:.1f}", f"{rate:.0f}", f"{rate / best:.0%}"]
        )
    header = ["model", "input", "GFLOP per frame (convolutions)", "ms per frame, 1 thread"]
    peak_label = f"of the peak ({best:.0f} GFLOP/s: a 3x3 conv, {PEAK_CHANNELS} channels)"
    return table([*header, "GFLOP/s", peak_label], rows)
