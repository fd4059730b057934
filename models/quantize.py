"""Static int8 quantisation (QDQ) of a registered model, and registering the result.

Only the convolutional trunk is quantised: the nodes that feed another convolution. The
last convolutions and the decode head after them (box arithmetic in input pixels next to
class probabilities in [0, 1]) stay float, because one int8 scale cannot serve both ranges.
Calibration frames come from the caller (detector.calibration feeds real footage).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from models import registry
from models.errors import ModelError
from models.graph import faster_dfl
from models.integrity import sha256_file
from models.manifest import Manifest, Quantization

log = logging.getLogger(__name__)

# u8 activations, s8 per-channel weights: ONNX Runtime's fast integer path on x86 (s8s8
# measured no faster than float here). Percentile calibration: with plain min/max a few
# outlier activations stretch the u8 range and agreement fell to 88% (97% with 99.99%).
METHOD = "static-qdq-u8s8-per-channel-percentile99.99"
MIN_AGREEMENT = 0.95


class _Reader(CalibrationDataReader):
    def __init__(self, input_name: str, tensors: Iterable[np.ndarray]) -> None:
        self._batches: Iterator[np.ndarray] = iter(tensors)
        self._name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._name: batch}


def trunk_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes with a Conv downstream of them: the part worth quantising."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_conv: dict[str, bool] = {}

    def visit(node: onnx.NodeProto) -> bool:
        # Graphs are DAGs listed in topological order; memoised DFS over consumers.
        if node.name not in feeds_conv:
            nexts = [c for out in node.output for c in consumers.get(out, [])]
            feeds_conv[node.name] = any(c.op_type == "Conv" or visit(c) for c in nexts)
        return feeds_conv[node.name]

    return [n.name for n in model.graph.node if visit(n)]


def quantize_file(source: Path, target: Path, calibration: Iterable[np.ndarray]) -> None:
    """Write an int8 QDQ copy of the ONNX model at `source`, calibrated on NCHW tensors."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference + constant folding first, as ONNX Runtime recommends before QDQ.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        # Before quantising: the rewritten DFL head no longer feeds a Conv, so it stays float
        # (and keeps its fast layout) instead of getting Q/DQ pairs the engine cannot rewrite.
        rewritten = faster_dfl(model)
        if rewritten:
            # The shapes inferred before the rewrite no longer hold for the DFL head; the
            # quantiser infers them again (stale ones only make ONNX Runtime warn per run).
            del model.graph.value_info[:]
        named = [n for n in model.graph.node if not n.name]
        for i, node in enumerate(named):
            node.name = f"node_{i}"  # exclusion works by name
        if named or rewritten:
            onnx.save(model, str(prepared))
        keep = set(trunk_nodes(model))
        if not keep:
            raise ModelError(f"{source}: no convolutions to quantise")
        input_name = next(
            i.name
            for i in model.graph.input
            if i.name not in {t.name for t in model.graph.initializer}
        )
        quantize_static(
            str(prepared),
            str(target),
            _Reader(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=sorted(keep),
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={
                "ActivationSymmetric": False,
                "WeightSymmetric": True,
                "CalibPercentile": 99.99,
            },
        )


def quantized_manifest(
    parent: Manifest, model_file: Path, name: str, agreement: float | None = None
) -> Manifest:
    """The manifest of `model_file`, an int8 child of `parent`."""
    return Manifest.model_validate(
        # Trained like its parent; its own quality is measured separately.
        parent.model_dump(exclude={"created_at", "evaluation"})
        | {
            "name": name,
            "version": f"{parent.version}+int8",
            "sha256": sha256_file(model_file),
            "quantization": Quantization(
                quantized_from=parent.name,
                method=METHOD,
                agreement=None if agreement is None else round(agreement, 4),
            ),
        }
    )


def register_quantized(
    manifest: Manifest, model_file: Path, force: bool = False
) -> tuple[Manifest, Path]:
    """Register an int8 model; refused below MIN_AGREEMENT unless `force`.

    A quantised model that disagrees with its parent would silently change which incidents
    are reported, so its agreement must have been measured.
    """
    q = manifest.quantization
    if q is None or q.agreement is None:
        raise ModelError(f"model '{manifest.name}': no measured agreement; not registered")
    if q.agreement < MIN_AGREEMENT and not force:
        raise ModelError(
            f"int8 model agrees with {q.quantized_from} on {q.agreement:.1%} of detections, "
            f"below {MIN_AGREEMENT:.0%}; not registered (pass --force to register it anyway)"
        )
    return manifest, registry.register_file(manifest, model_file)
