"""How close a model's inference comes to the CPU's float peak.

A model's work is the multiply-adds of its convolutions at a given input (from ONNX shape
inference); the peak is a large single-precision matrix product in OpenBLAS (NumPy's BLAS) on
every core, the best-tuned float kernel on the machine (ONNX Runtime's own MatMul measured
lower, below what its convolutions reach). A model running near that rate has nothing left to
gain from scheduling, only from doing less work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from benchmarks.common import per_call_ms

SGEMM_N = 2048  # 8.6 GFLOP a product: long enough to reach the kernel's rate


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


def sgemm_gflops(runs: int) -> float:
    """The cores' practical float peak: NumPy's OpenBLAS SGEMM on a large square, on every
    core (its own threads), median of `runs`."""
    a, b = (np.random.default_rng(seed).random((SGEMM_N, SGEMM_N), np.float32) for seed in (0, 1))
    ms = per_call_ms(lambda: a @ b, 4, runs)
    return 2 * SGEMM_N**3 / (ms * 1e6)
