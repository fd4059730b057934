"""Describe an Ultralytics-exported detect ONNX (YOLOv8/YOLO11) from its own metadata.

Ultralytics writes `names` as a Python dict literal ("{0: 'person', ...}") and `imgsz` as
"[h, w]" into the ONNX metadata_props; its detect output is already our (B, 4 + nc, N) contract.
"""

from __future__ import annotations

import ast
from pathlib import Path

import onnx

from api.contract import IncidentType
from models.errors import ModelError
from models.integrity import sha256_file
from models.manifest import Manifest, Source, coco_incident_defaults


def _literal(props: dict[str, str], key: str, path: Path) -> object:
    if key not in props:
        raise ModelError(f"{path}: no '{key}' in the ONNX metadata; is it an Ultralytics export?")
    try:
        return ast.literal_eval(props[key])  # data, never code
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"{path}: metadata '{key}' is not a literal: {props[key]!r}") from exc


def _class_names(props: dict[str, str], path: Path) -> list[str]:
    names = _literal(props, "names", path)
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))):
        raise ModelError(f"{path}: metadata 'names' must map 0..n-1 to class names")
    return [str(names[i]) for i in range(len(names))]


def _input_size(props: dict[str, str], path: Path) -> tuple[int, int]:
    imgsz = _literal(props, "imgsz", path)
    if isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    if not (isinstance(imgsz, list | tuple) and len(imgsz) == 2):
        raise ModelError(f"{path}: metadata 'imgsz' must be [h, w], got {imgsz!r}")
    h, w = (int(v) for v in imgsz)
    return w, h


def _dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    """Static dims as ints, symbolic ones as None."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def manifest_from_onnx(
    path: Path,
    name: str,
    incident_classes: dict[IncidentType, list[str]] | None = None,
    stall_attendant_classes: list[str] | None = None,
) -> Manifest:
    """Build a manifest for an Ultralytics detect ONNX.

    incident_classes overrides the mapping per incident type; types it leaves out get the
    COCO stand-ins the model has (none for a model without COCO names). Stall attendants
    default to people only while the stall classes are those stand-ins.
    """
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("task", "detect") != "detect":
        raise ModelError(f"{path}: task is {props['task']!r}; only detect models are supported")
    names = _class_names(props, path)
    inputs = [
        i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}
    ]
    if len(inputs) != 1 or len(_dims(inputs[0])) != 4:
        raise ModelError(f"{path}: expected one NCHW image input")
    if len(model.graph.output) != 1:
        raise ModelError(f"{path}: expected one output, found {len(model.graph.output)}")
    out = _dims(model.graph.output[0])
    if len(out) != 3 or out[1] not in (None, 4 + len(names)):
        raise ModelError(
            f"{path}: output shape {out} is not (B, 4 + {len(names)}, N); export it without "
            "nms=True / end2end so the raw detect head is kept"
        )
    default_incident, default_attendants = coco_incident_defaults(names)
    if stall_attendant_classes is None:
        # People decide whether a stand-in (a COCO umbrella, a static object) is a stall or
        # garbage; a model's own stall classes raise stalls without them.
        stall_attendant_classes = default_attendants
    digest = sha256_file(path)
    return Manifest(
        name=name,
        version=props.get("version", "unknown"),
        input_size=_input_size(props, path),
        dynamic_hw=None in _dims(inputs[0])[2:],
        stride=int(props.get("stride", 32)),
        class_names=names,
        incident_classes=default_incident | (incident_classes or {}),
        stall_attendant_classes=stall_attendant_classes,
        licence=props.get("license", "unknown"),
        source=Source(file=str(path.resolve()), sha256=digest),
        sha256=digest,
    )
