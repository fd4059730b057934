"""models.graph on a DFL head laid out as Ultralytics exports it (no Ultralytics model can
be made here without torch: the nodes, shapes and opset are those of a YOLOv8n export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from detector.engine import _session
from models.graph import faster_dfl
from models.quantize import trunk_nodes

R = 16  # Ultralytics' reg_max


def dfl_head(opset: int = 17, out_channels: int = 1) -> onnx.ModelProto:
    """(B, 4R, N) box logits -> DFL -> (B, 4, N) expected distances, as in a YOLOv8 export."""
    kernel = np.arange(R * out_channels, dtype=np.float32).reshape(out_channels, R, 1, 1)
    nodes = [
        helper.make_node("Shape", ["logits"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Gather", ["shape", "two"], ["anchors"], axis=0),
        helper.make_node("Concat", ["batch", "four", "r", "anchors"], ["dims"], axis=0),
        helper.make_node("Reshape", ["logits", "dims"], ["split"]),
        helper.make_node("Transpose", ["split"], ["bins_first"], perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["bins_first"], ["probs"], axis=1),
        helper.make_node("Conv", ["probs", "dfl.conv.weight"], ["expected"], kernel_shape=[1, 1]),
        helper.make_node("Concat", ["batch", "four_c", "anchors"], ["out_dims"], axis=0),
        helper.make_node("Reshape", ["expected", "out_dims"], ["distances"]),
    ]
    consts = {"zero": [0], "two": [2], "four": [4], "r": [R], "four_c": [4 * out_channels]}
    initializers = [numpy_helper.from_array(kernel, "dfl.conv.weight")] + [
        numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()
    ]
    graph = helper.make_graph(
        nodes,
        "dfl",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 4 * R, "n"])],
        [helper.make_tensor_value_info("distances", TensorProto.FLOAT, ["b", None, "n"])],
        initializers,
    )
    # IR 8 is what Ultralytics writes, and what any ONNX Runtime reads
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"logits": x})[0]


def test_dfl_rewrite_gives_the_same_distances() -> None:
    x = np.random.default_rng(0).normal(0, 3, (2, 4 * R, 5040)).astype(np.float32)
    original = dfl_head()
    expected = run(original, x)
    rewritten = dfl_head()
    assert faster_dfl(rewritten) == 1
    ops = [n.op_type for n in rewritten.graph.node]
    assert "Conv" not in ops and "MatMul" in ops
    assert "dfl.conv.weight" not in {t.name for t in rewritten.graph.initializer}
    onnx.checker.check_model(rewritten, full_check=True)
    np.testing.assert_allclose(run(rewritten, x), expected, rtol=1e-5, atol=1e-5)
    assert expected.shape == (2, 4, 5040) and expected.min() > 0 and expected.max() < R - 1


@pytest.mark.parametrize(
    "model",
    [dfl_head(opset=12), dfl_head(out_channels=2)],
    ids=["softmax over all trailing dims before opset 13", "conv to more than one channel"],
)
def test_lookalikes_are_left_alone(model: onnx.ModelProto) -> None:
    before = model.SerializeToString()
    assert faster_dfl(model) == 0
    assert model.SerializeToString() == before


def test_engine_sessions_load_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "head.onnx"
    onnx.save(dfl_head(), str(path))
    x = np.random.default_rng(1).normal(0, 3, (1, 4 * R, 8400)).astype(np.float32)
    (got,) = _session(path, 1, ["CPUExecutionProvider"]).run(None, {"logits": x})
    np.testing.assert_allclose(got, run(dfl_head(), x), rtol=1e-5, atol=1e-5)
    assert onnx.load(str(path)).SerializeToString() == dfl_head().SerializeToString()  # untouched


def test_default_model_has_nothing_to_rewrite(default_model: Path) -> None:
    model = onnx.load(str(default_model))
    assert faster_dfl(model) == 0


def test_quantisation_leaves_the_rewritten_head_float() -> None:
    # models.quantize quantises what feeds a Conv: the DFL softmax did until the rewrite.
    model = dfl_head()
    assert "Softmax" in {n.op_type for n in model.graph.node if n.name in trunk(model)}
    faster_dfl(model)
    assert trunk(model) == set()


def trunk(model: onnx.ModelProto) -> set[str]:
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"node_{i}"
    return set(trunk_nodes(model))
