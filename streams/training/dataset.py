"""Training datasets from reviewed cases, as `streetwatch dataset {export,import}` builds them
and a test can call them.

The cases come from the intake API (reviewed: accepted ones are positives, ones rejected as
`false_detection` hard negatives) or from `score` output (unreviewed: every case a
positive); `models.dataset` writes the YOLO layout. `export_dataset` and `import_dataset`
raise `TrainingRequestError` before anything is written, `TrainingFailed` when the building
fails (and then nothing is left under the output directory).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from api.contract import CaseReport, EvidenceBox, IncidentType
from streams.training.errors import TrainingFailed, TrainingRequestError

if TYPE_CHECKING:  # models.dataset loads cv2 and yaml: only when a dataset is built
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
        if ev.get("removed_at"):
            skipped.append(f"case {case['id']}: evidence {ev['sha256'][:12]} deleted by retention")
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
        }
        if role == "negative":
            yield Sample(**common)
            continue
        for bbox in [reviewed] if reviewed else [b.bbox for b in boxes]:
            yield Sample(label=label, bbox=tuple(bbox), **common)


def from_api(url: str, key: str, classes: ClassMap, skipped: list[str]) -> Iterator[Sample]:
    """The reviewed cases of the intake API at `url` (a dispatch-scope `key`)."""
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


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One export: from the API (`api` with a dispatch-scope `key`) or from `score` output
    (`from_score`), exactly one. The fields are `streetwatch dataset export`'s options, and
    the errors name them so."""

    out: Path  # a new (or empty) directory
    api: str | None = None  # the intake API's URL
    key: str = ""
    from_score: Path | None = None  # a `score` cases file (JSON lines)
    model: str = "default"  # the model whose classes the cases were seen with
    val_fraction: float = 0.25  # share of camera-days held out for validation

    def __post_init__(self) -> None:
        if bool(self.api) == bool(self.from_score):
            raise TrainingRequestError("give exactly one of --api URL or --from-score CASES.jsonl")
        if not 0 < self.val_fraction < 1:
            raise TrainingRequestError(
                f"--val-fraction must be between 0 and 1, got {self.val_fraction}"
            )

    @property
    def source(self) -> str:
        """How the dataset's manifest names where it came from."""
        if self.api:
            return f"api:{self.api}"
        assert self.from_score is not None
        return f"score:{self.from_score.resolve()}"


class DatasetProgress:
    """What a build tells whoever watches it; each does nothing here, so a watcher overrides
    what it shows (the command line: a line, and the reading and writing bars)."""

    bars = False  # models.dataset's progress bars on stderr, reading cases and writing labels

    def begin(self, source: str, out: Path, classes: Sequence[str]) -> None:
        """An export starts: the cases of `source` into `out`, with these classes."""


def export_dataset(
    request: ExportRequest, progress: DatasetProgress | None = None
) -> DatasetManifest:
    """Builds the dataset `request` asks for; returns its manifest (also in OUT)."""
    from api.client import IntakeError
    from models import registry
    from models.dataset import DatasetError, class_map, write_dataset
    from models.errors import ModelError

    progress = progress or DatasetProgress()
    if request.api and not request.key:
        raise TrainingRequestError("--api needs a key with the dispatch scope")
    if request.from_score and not request.from_score.is_file():
        raise TrainingRequestError(f"{request.from_score}: no such file")
    try:
        classes = class_map(registry.resolve(request.model)[0])
    except ModelError as exc:
        raise TrainingRequestError(str(exc)) from exc
    skipped: list[str] = []
    if request.api:
        samples = from_api(request.api, request.key, classes, skipped)
    else:
        assert request.from_score is not None
        samples = from_score(request.from_score, classes, skipped)
    progress.begin(request.source, request.out, classes.names)
    try:
        return write_dataset(
            request.out,
            samples,
            classes,
            request.source,
            request.val_fraction,
            skipped,
            progress=progress.bars,
        )
    except (DatasetError, IntakeError, ValueError, OSError) as exc:
        raise TrainingFailed(str(exc)) from exc


def import_dataset(
    folder: Path, out: Path, progress: DatasetProgress | None = None
) -> DatasetManifest:
    """An existing YOLO folder (with dataset.yaml or data.yaml) as a StreetWatch dataset in
    `out`, its split kept; returns its manifest."""
    from models.dataset import DatasetError, read_yolo_folder, write_dataset

    if not folder.is_dir():
        raise TrainingRequestError(f"{folder}: no such folder")
    try:
        samples, classes = read_yolo_folder(folder)
        return write_dataset(
            out,
            samples,
            classes,
            f"folder:{folder.resolve()}",
            progress=(progress or DatasetProgress()).bars,
        )
    except (DatasetError, OSError) as exc:
        raise TrainingFailed(str(exc)) from exc
