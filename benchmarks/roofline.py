"""How close a model's inference comes to the CPU's float peak.

A model's work is the multiply-adds of its convolutions at a given input (from ONNX shape
inference); the peak is large single-precision matrix products in OpenBLAS (NumPy's BLAS),
the best-tuned float kernel on the machine, one single-threaded stream per core as the engine
runs (ONNX Runtime's own MatMul, and OpenBLAS threading one product over the cores, both
measured below what the models' convolutions reach). A model running near that rate has
nothing left to gain from scheduling, only from doing less work.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from benchmarks.common import run_json
from detector.engine import available_cores

SGEMM_N = 2048  # 17 GFLOP a product: long enough to reach the kernel's rate
PRODUCTS = 4  # per thread


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


def _concurrent_sgemm_gflops(threads: int) -> float:
    """One SGEMM after another on each of `threads` threads at once (OpenBLAS must be
    single-threaded, so each thread is one core's worth), GFLOP/s over them all."""
    a, b = (np.random.default_rng(seed).random((SGEMM_N, SGEMM_N), np.float32) for seed in (0, 1))
    a @ b  # warm-up
    with ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: [a @ b for _ in range(PRODUCTS)], range(threads)))
        seconds = time.perf_counter() - started
    return threads * PRODUCTS * 2 * SGEMM_N**3 / seconds / 1e9


def sgemm_gflops() -> float:
    """The cores' float peak: OpenBLAS SGEMM run the engine's way, one single-threaded run per
    core side by side. In a child process, as OpenBLAS reads its thread count at start-up."""
    out = run_json(
        [sys.executable, "-m", "benchmarks.roofline"],
        {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    return float(out)


if __name__ == "__main__":
    print(_concurrent_sgemm_gflops(available_cores()))
