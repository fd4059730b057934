"""`streetwatch dataset {export,import}`: training datasets from reviewed cases, a thin layer
over `streams.training.dataset` (which says where the cases come from and how)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from streams.cli.common import EXIT_OK, refused
from streams.config import DEFAULT_KEY_ENV, api_key
from streams.training.dataset import (
    DatasetProgress,
    ExportRequest,
    export_dataset,
    import_dataset,
)
from streams.training.errors import TrainingFailed, TrainingRequestError

if TYPE_CHECKING:
    from models.dataset import DatasetManifest


class Shown(DatasetProgress):
    """A build on the terminal: what is exported where, and the reading and writing bars."""

    bars = True

    def begin(self, source: str, out: Path, classes: Sequence[str]) -> None:
        print(f"exporting {source} -> {out} (classes: {', '.join(classes)})")


def _summary(out: Path, manifest: DatasetManifest) -> None:
    for split in ("train", "val"):
        counts = ", ".join(f"{k} {v}" for k, v in manifest.boxes_per_class[split].items() if v)
        print(
            f"  {split}: {manifest.images_per_split[split]} images "
            f"({manifest.negatives_per_split[split]} hard negatives); boxes: {counts or 'none'}"
        )
    for line in manifest.skipped:
        print(f"  skipped: {line}")
    print(f"  {out / 'dataset.yaml'}, manifest.json, contact/*.png")


def _export(args: argparse.Namespace) -> int:
    key_env, key = api_key(key_env=args.key_env)
    try:
        request = ExportRequest(
            out=args.out,
            api=args.api,
            key=key or "",
            from_score=args.from_score,
            model=args.model,
            val_fraction=args.val_fraction,
        )
        if args.api and not key:
            raise TrainingRequestError(f"--api needs a key with the dispatch scope in ${key_env}")
        manifest = export_dataset(request, Shown())
    except (TrainingRequestError, TrainingFailed) as exc:
        return refused(exc, TrainingRequestError)
    print(f"wrote {len(manifest.images)} images from {len(manifest.cases)} cases:")
    _summary(args.out, manifest)
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    try:
        manifest = import_dataset(args.folder, args.out, Shown())
    except (TrainingRequestError, TrainingFailed) as exc:
        return refused(exc, TrainingRequestError)
    print(f"imported {len(manifest.images)} images ({', '.join(manifest.names)}):")
    _summary(args.out, manifest)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dataset", help="build YOLO training datasets from reviewed cases"
    )
    sub = parser.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "export",
        help="reviewed cases -> a YOLO dataset",
        description="Accepted cases become positives (the reviewer's corrected box, else the "
        "worker's), cases rejected as false_detection hard negatives (their frames with no "
        "label). Full unaltered frames; train/val split by camera and day.",
    )
    p.add_argument("--out", required=True, type=Path, help="new dataset directory")
    p.add_argument("--api", metavar="URL", help="the intake API to read reviewed cases from")
    p.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        metavar="VAR",
        help=f"environment variable with a dispatch-scope key (default {DEFAULT_KEY_ENV})",
    )
    p.add_argument(
        "--from-score",
        type=Path,
        metavar="CASES.jsonl",
        help="`streetwatch score` output instead (unreviewed: every case a positive)",
    )
    p.add_argument(
        "--model",
        default="default",
        help="model whose classes the cases were seen with (default: default)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.25,
        help="share of camera-days held out for validation (default 0.25; at least one)",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser("import", help="an existing YOLO dataset folder -> a StreetWatch dataset")
    p.add_argument("folder", type=Path, help="folder with dataset.yaml (or data.yaml)")
    p.add_argument("--out", required=True, type=Path, help="new dataset directory")
    p.set_defaults(func=_import)
