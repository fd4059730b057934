"""`streetwatch dataset {export,import}`: training datasets from reviewed cases.

The cases come from the intake API (reviewed: accepted ones are positives, ones rejected as
`false_detection` hard negatives) or from `score` output (unreviewed: every case a
positive); `models.dataset` writes the YOLO layout.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from api.contract import CaseReport, EvidenceBox, IncidentType
from streams.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err
from streams.config import DEFAULT_KEY_ENV, api_key

if TYPE_CHECKING:  # models.dataset loads cv2 and yaml: only when a command runs
    from models.dataset import ClassMap, DatasetManifest, Sample

Fetch = Callable[[dict[str, Any]], bytes]

# Statuses a case reaches only through acceptance (立案): reviewed and real.
ACCEPTED = ("accepted", "dispatched", "resolved", "closed")
OBJECT_SHOTS = ("first_seen", "confirmed")  # frames with the object on them (cleared: without)


def _reject_reason(detail: dict[str, Any]) -> str | None:
    moves = [h for h in detail["history"] if h["kind"] == "transition"]
    rejected = [h for h in moves if h["to_status"] == "rejected"]
    return rejected[-1]["data"].get("reason") if rejected else None


def _case_samples(
    case: dict[str, Any], role: str, classes: ClassMap, fetch: Fetch, skipped: list[str]
) -> Iterator[Sample]:
    """A case's object frames as samples; frames without box metadata are skipped (they
    were stored with the box drawn in, before clean evidence, and are no training data)."""
    from models.dataset import Sample

    label = classes.label_for(IncidentType(case["type"]), case["class_name"] or "")
    for ev in case["evidence"]:
        if ev["kind"] not in OBJECT_SHOTS:
            continue
        boxes = [EvidenceBox.model_validate(b) for b in ev["boxes"]]
        if not boxes:
            skipped.append(f"case {case['id']}: evidence {ev['sha256'][:12]} has no box metadata")
            continue
        reviewed = case.get("reviewed_bbox")
        common = {
            "case_id": case["id"],
            "role": role,
            "image": fetch(ev),
            "camera_id": ev["camera_id"] or case["camera_id"] or "unknown",
            "captured_at": datetime.fromisoformat(ev["captured_at"]),
            "plate": case.get("plate"),
        }
        if role == "negative":
            yield Sample(**common)
            continue
        for bbox in [reviewed] if reviewed else [b.bbox for b in boxes]:
            yield Sample(label=label, bbox=tuple(bbox), **common)


def from_api(url: str, key: str, classes: ClassMap, skipped: list[str]) -> Iterator[Sample]:
    from api.client import IntakeClient

    with IntakeClient(url, key) as client:

        def fetch(ev: dict[str, Any]) -> bytes:
            return client.get_evidence(ev["sha256"])

        for case in client.list_cases(ACCEPTED):
            yield from _case_samples(case, "positive", classes, fetch, skipped)
        for case in client.list_cases(["rejected"]):
            reason = _reject_reason(client.get_case(case["id"]))
            if reason == "false_detection":
                yield from _case_samples(case, "negative", classes, fetch, skipped)
            else:  # permitted, a fixture, a duplicate: real things, neither label nor negative
                skipped.append(f"case {case['id']}: rejected as {reason or 'unknown'}")


def from_score(cases_file: Path, classes: ClassMap, skipped: list[str]) -> Iterator[Sample]:
    """`score` output: unreviewed, so every case is taken as a positive."""
    for n, line in enumerate(cases_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            report = CaseReport.model_validate_json(line)
        except ValidationError as exc:
            raise ValueError(f"{cases_file}:{n}: not a case report: {exc}") from None

        def fetch(ev: dict[str, Any]) -> bytes:
            path = Path(ev["path"])
            if not path.is_absolute() and not path.exists():
                path = cases_file.parent / path
            return path.read_bytes()

        case = json.loads(report.model_dump_json())
        for ev in case["evidence"]:
            ev["camera_id"] = report.camera_id
        case["reviewed_bbox"] = None
        yield from _case_samples(case, "positive", classes, fetch, skipped)


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
    from models import registry
    from models.dataset import DatasetError, class_map, write_dataset
    from models.errors import ModelError

    if bool(args.api) == bool(args.from_score):
        err("give exactly one of --api URL or --from-score CASES.jsonl")
        return EXIT_USAGE
    if not 0 < args.val_fraction < 1:
        err(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
        return EXIT_USAGE
    key_env, key = api_key(key_env=args.key_env)
    if args.api and not key:
        err(f"--api needs a key with the dispatch scope in ${key_env}")
        return EXIT_USAGE
    if args.from_score and not args.from_score.is_file():
        err(f"{args.from_score}: no such file")
        return EXIT_USAGE
    try:
        classes = class_map(registry.resolve(args.model)[0])
    except ModelError as exc:
        err(str(exc))
        return EXIT_USAGE
    skipped: list[str] = []
    if args.api:
        samples, source = from_api(args.api, key, classes, skipped), f"api:{args.api}"
    else:
        samples = from_score(args.from_score, classes, skipped)
        source = f"score:{args.from_score.resolve()}"
    print(f"exporting {source} -> {args.out} (classes: {', '.join(classes.names)})")
    from api.client import IntakeError

    try:
        manifest = write_dataset(
            args.out, samples, classes, source, args.val_fraction, skipped, progress=True
        )
    except (DatasetError, IntakeError, ValueError, OSError) as exc:
        err(str(exc))
        return EXIT_FAILED
    print(f"wrote {len(manifest.images)} images from {len(manifest.cases)} cases:")
    _summary(args.out, manifest)
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from models.dataset import DatasetError, read_yolo_folder, write_dataset

    if not args.folder.is_dir():
        err(f"{args.folder}: no such folder")
        return EXIT_USAGE
    try:
        samples, classes = read_yolo_folder(args.folder)
        manifest = write_dataset(
            args.out, samples, classes, f"folder:{args.folder.resolve()}", progress=True
        )
    except (DatasetError, OSError) as exc:
        err(str(exc))
        return EXIT_FAILED
    print(f"imported {len(manifest.images)} images ({', '.join(classes.names)}):")
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
