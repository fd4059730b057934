"""`streetwatch train` (and `models compare`, which `streams.cli.models` registers): a thin
layer over `streams.training.flow`, which trains, registers, quantises and evaluates a
detector, and compares two models on the same data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from streams.cli.common import EXIT_FAILED, EXIT_OK, err, refused
from streams.training.errors import TrainingFailed, TrainingRequestError
from streams.training.flow import (
    CompareRequest,
    TrainProgress,
    TrainRequest,
    compare_models,
    train_and_register,
)

if TYPE_CHECKING:
    from models.dataset import DatasetManifest
    from models.manifest import Evaluation, Manifest


def _print_metrics(rows: list[tuple[str, Evaluation]]) -> None:
    """Evaluations side by side: one column per model."""
    names = [n for n, _ in rows]
    evals = [e for _, e in rows]
    table = [["", *names]]
    table += [[k, *(f"{getattr(e, k):.3f}" for e in evals)] for k in ("map50", "map50_95")]
    table += [[k, *(f"{getattr(e, k):.3f}" for e in evals)] for k in ("precision", "recall")]
    classes = list(dict.fromkeys(c for e in evals for c in e.per_class))
    for c in classes:
        for k in ("ap50", "precision", "recall"):
            cells = [
                f"{getattr(e.per_class[c], k):.3f}" if c in e.per_class else "-" for e in evals
            ]
            table.append([f"{c} {k}", *cells])
    for t in dict.fromkeys(t for e in evals for t in (e.cases or {})):
        table.append([f"cases {t}", *(str((e.cases or {}).get(t, "-")) for e in evals)])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    first = evals[0]
    print(
        f"({first.images} validation images; precision/recall at conf {first.conf_threshold}, "
        f"IoU 0.5; NMS IoU {first.iou_threshold})"
    )


class Shown(TrainProgress):
    """A training run on the terminal: a line a step (Ultralytics draws its own progress)."""

    def training(self, request: TrainRequest, data: DatasetManifest) -> None:
        counts = data.images_per_split
        print(
            f"training {request.name} from {request.base} on {request.data} "
            f"({counts['train']} train / {counts['val']} val images; {request.epochs} epochs "
            f"at {request.imgsz} px on {request.device})"
        )

    def registered(self, manifest: Manifest, seconds: float) -> None:
        print(f"registered {manifest.name} ({seconds:.0f} s of training)")

    def quantising(self, source: str, frames: int) -> None:
        print(f"quantising {source} to int8 on {frames} of the dataset's frames")

    def quantised(self, name: str, source: str, agreement: float) -> None:
        print(f"registered {name}: agreement with {source} on the val frames {agreement:.1%}")

    def int8_failed(self, reason: str) -> None:
        err(f"int8 model not registered: {reason}")

    def evaluating(self, name: str) -> None:
        print(f"evaluating {name} through the engine on the validation split")


def _train(args: argparse.Namespace) -> int:
    try:
        request = TrainRequest(
            data=args.data,
            name=args.name,
            base=args.base,
            imgsz=args.imgsz,
            epochs=args.epochs,
            batch=args.batch,
            device=args.device,
            seed=args.seed,
            workdir=args.workdir,
            int8=not args.no_int8,
            force=args.force,
            scenario=args.scenario,
            conf=args.conf,
            iou=args.iou,
        )
        result = train_and_register(request, Shown())
    except (TrainingRequestError, TrainingFailed) as exc:
        return refused(exc, TrainingRequestError)
    _print_metrics(result.evaluations)
    return EXIT_OK if result.complete else EXIT_FAILED


def compare(args: argparse.Namespace) -> int:
    try:
        rows = compare_models(
            CompareRequest(args.a, args.b, args.data, args.scenario, args.conf, args.iou)
        )
    except (TrainingRequestError, TrainingFailed) as exc:
        return refused(exc, TrainingRequestError)
    _print_metrics(rows)
    return EXIT_OK


def thresholds(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--conf",
        type=float,
        default=0.25,
        help="engine confidence threshold for precision/recall (default 0.25)",
    )
    p.add_argument(
        "--iou", type=float, default=0.45, help="engine NMS IoU threshold (default 0.45)"
    )
    p.add_argument(
        "--scenario",
        type=Path,
        metavar="CONFIG",
        help="also count the cases this config's file cameras yield",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a detector on a dataset, register, quantise and evaluate it",
        description="Trains with Ultralytics (the train extra), offline, from a .pt you supply "
        "or from scratch (an architecture YAML); exports ONNX with dynamic input; registers "
        "NAME with the dataset's class-to-incident mapping; quantises NAME-int8 calibrated on "
        "the dataset's training frames; evaluates both through the engine on the val split.",
    )
    p.add_argument(
        "--data", required=True, type=Path, help="dataset directory (streetwatch dataset export)"
    )
    p.add_argument("--name", required=True, help="registry name, e.g. city-v1")
    p.add_argument(
        "--base",
        default="yolov8n.yaml",
        help="a .pt to fine-tune, or an architecture: yolov8n.yaml (default), yolo11n.yaml, ...",
    )
    p.add_argument(
        "--imgsz", type=int, default=640, help="training and export size in pixels (default 640)"
    )
    p.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--device", default="cpu", help="cpu (default), 0 for the first GPU, ...")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep Ultralytics' run directory here (default: a temporary one)",
    )
    p.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace existing models; register the int8 model even below the agreement threshold",
    )
    thresholds(p)
    p.set_defaults(func=_train)
