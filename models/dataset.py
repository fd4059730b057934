"""Training datasets in the Ultralytics/YOLO layout, built from reviewed cases.

    DIR/images/{train,val}/<camera>_<day>_<sha12>.jpg   the unaltered evidence frames
    DIR/labels/{train,val}/<same>.txt                    "class cx cy w h" (normalised), one per
                                                         box; empty for a hard negative
    DIR/dataset.yaml                                     what Ultralytics reads
    DIR/manifest.json                                    source cases, counts, sha256 of images
    DIR/contact/<class>.png                              thumbnails of every class's boxes

An accepted case's frames are positives (its reviewer-corrected box, else the worker's); a
case rejected as `false_detection` contributes its frames as hard negatives (no label for
what was wrongly seen). The split is by camera and day, so one scene is never in both.
Sources (the intake API, `score` output, a YOLO folder) turn into `Sample`s elsewhere.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from api.contract import IncidentType
from models.manifest import COCO_LOOK_ALIKES, Manifest

Split = Literal["train", "val"]
Role = Literal["positive", "negative"]
SPLITS: tuple[Split, ...] = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MANIFEST_FILE = "manifest.json"
YAML_FILE = "dataset.yaml"


class DatasetError(ValueError):
    """A dataset cannot be built or read as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One evidence frame of one case: what the dataset is built from."""

    case_id: str
    role: Role
    image: bytes  # encoded JPEG/PNG, as stored
    camera_id: str
    captured_at: datetime
    label: str | None = None  # the class, for a positive
    bbox: tuple[float, float, float, float] | None = None  # xyxy pixels, for a positive
    split: Split | None = None  # fixed by the source (an imported folder); else by scene
    plate: str | None = None  # a parking case's licence plate, as the API has it


@dataclass(frozen=True, slots=True)
class ClassMap:
    """The dataset's classes and which incident each one raises."""

    names: list[str]
    incident_classes: dict[IncidentType, list[str]]

    def label_for(self, type_: IncidentType, class_name: str) -> str:
        """A case's training label: the model's own class when it raises that incident
        directly (a car), else the incident type itself (what a stand-in saw)."""
        direct = self.incident_classes.get(type_, [])
        return class_name if class_name in direct else type_.value


def class_map(model: Manifest) -> ClassMap:
    """Classes from the incident types and the model's classes: for each type, the model's
    classes that raise it directly (not look-alikes such as a COCO umbrella), or the type's
    own name when it has none (stalls and garbage for a COCO model)."""
    incident: dict[IncidentType, list[str]] = {}
    for type_ in IncidentType:
        look_alikes = set(COCO_LOOK_ALIKES.get(type_, ()))
        direct = [c for c in model.incident_classes.get(type_, []) if c not in look_alikes]
        incident[type_] = direct or [type_.value]
    names = list(dict.fromkeys(c for cs in incident.values() for c in cs))
    return ClassMap(names, incident)


class ImageEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str  # relative to the dataset directory
    split: Split
    sha256: str
    camera_id: str
    day: str | None
    width: int
    height: int
    boxes: int
    cases: list[str]


class CaseEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    role: Role
    label: str | None
    images: int
    plate: str | None = None  # a parking case's licence plate (personal data: keep it so)


class DatasetManifest(BaseModel):
    """What a dataset holds and where it came from; `data_sha256` identifies its content."""

    model_config = ConfigDict(extra="forbid")

    source: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    names: list[str]
    incident_classes: dict[IncidentType, list[str]]
    split_by: str
    data_sha256: str  # over every image's sha256 and its label file, in file order
    images: list[ImageEntry]
    cases: list[CaseEntry]
    boxes_per_class: dict[Split, dict[str, int]]
    images_per_split: dict[Split, int]
    negatives_per_split: dict[Split, int]
    skipped: list[str] = Field(default_factory=list)

    @classmethod
    def read(cls, directory: Path) -> DatasetManifest:
        path = directory / MANIFEST_FILE
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: not a StreetWatch dataset manifest ({exc})") from exc


@dataclass(slots=True)
class _Image:
    """A distinct image, its bytes already on disk (a big export is never held in memory)."""

    path: Path
    sha256: str
    camera_id: str
    day: date | None
    split: Split | None
    size: tuple[int, int]  # width, height
    boxes: list[tuple[int, tuple[float, float, float, float]]] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:48] or "x"


def _pool(s: Sample, sha: str, pool: Path) -> _Image:
    """Checks a new image decodes, writes it to the staging pool, notes its size."""
    pixels = cv2.imdecode(np.frombuffer(s.image, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise DatasetError(f"case {s.case_id}: image {sha[:12]} does not decode")
    path = pool / (sha + (".png" if s.image[:4] == b"\x89PNG" else ".jpg"))
    path.write_bytes(s.image)
    day = s.captured_at.date() if s.split is None else None
    return _Image(path, sha, s.camera_id, day, s.split, (pixels.shape[1], pixels.shape[0]))


def _gather(
    samples: Iterable[Sample], classes: ClassMap, pool: Path, progress: bool
) -> tuple[list[_Image], list[CaseEntry]]:
    """One entry per distinct image (by sha256): a frame shared by cases gets all their boxes."""
    from tqdm import tqdm

    index = {name: i for i, name in enumerate(classes.names)}
    images: dict[str, _Image] = {}
    cases: dict[str, CaseEntry] = {}
    for s in tqdm(samples, desc="reading cases", unit=" frames", disable=not progress):
        sha = hashlib.sha256(s.image).hexdigest()
        if sha not in images:
            images[sha] = _pool(s, sha, pool)
        img = images[sha]
        entry = cases.setdefault(
            s.case_id,
            CaseEntry(id=s.case_id, role=s.role, label=s.label, images=0, plate=s.plate),
        )
        if s.case_id not in img.cases:
            img.cases.append(s.case_id)
            entry.images += 1
        if s.role == "positive":
            if s.label not in index or s.bbox is None:
                raise DatasetError(
                    f"case {s.case_id}: label {s.label!r} is not among {classes.names}"
                )
            img.boxes.append((index[s.label], s.bbox))
    return list(images.values()), list(cases.values())


def split_by_scene(images: Sequence[_Image], val_fraction: float) -> None:
    """Assign each camera-day to train or val as a whole, deterministically (by a hash of its
    key), at least one scene in each; images whose source fixed a split keep it."""
    scenes = sorted({(i.camera_id, i.day) for i in images if i.split is None}, key=_scene_order)
    if not scenes:
        return
    if len(scenes) < 2 and not any(i.split == "val" for i in images):
        raise DatasetError(
            "a train/val split by camera and day needs cases from at least two camera-days; "
            f"all come from {scenes[0][0]} on {scenes[0][1]}"
        )
    n_val = min(len(scenes) - 1, max(1, round(val_fraction * len(scenes))))
    val = set(scenes[:n_val])
    for img in images:
        if img.split is None:
            img.split = "val" if (img.camera_id, img.day) in val else "train"


def _scene_order(scene: tuple[str, date | None]) -> str:
    return hashlib.sha256(f"{scene[0]}/{scene[1]}".encode()).hexdigest()


def yolo_lines(boxes: Sequence[tuple[int, Sequence[float]]], width: int, height: int) -> str:
    """YOLO label text: "class cx cy w h", normalised to [0, 1], boxes clipped to the image."""
    if not boxes:
        return ""
    ids = np.array([b[0] for b in boxes])
    xyxy = np.array([b[1] for b in boxes], dtype=np.float64)
    xyxy = np.clip(xyxy, 0, [width, height, width, height])
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / width
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / height
    w = (xyxy[:, 2] - xyxy[:, 0]) / width
    h = (xyxy[:, 3] - xyxy[:, 1]) / height
    return "".join(
        f"{i} {a:.6f} {b:.6f} {c:.6f} {d:.6f}\n"
        for i, a, b, c, d in zip(ids, cx, cy, w, h, strict=True)
    )


def contact_sheet(crops: Sequence[np.ndarray], thumb: int = 96, columns: int = 8) -> np.ndarray:
    """Thumbnails (letterboxed to `thumb` pixels) on a grid."""
    rows = max(1, -(-len(crops) // columns))
    sheet = np.full((rows * (thumb + 4) + 4, columns * (thumb + 4) + 4, 3), 40, np.uint8)
    for k, crop in enumerate(crops):
        scale = thumb / max(crop.shape[:2])
        small = cv2.resize(
            crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        )
        y = 4 + (k // columns) * (thumb + 4) + (thumb - small.shape[0]) // 2
        x = 4 + (k % columns) * (thumb + 4) + (thumb - small.shape[1]) // 2
        sheet[y : y + small.shape[0], x : x + small.shape[1]] = small
    return sheet


def _crop(pixels: np.ndarray, bbox: Sequence[float], margin: float = 0.1) -> np.ndarray:
    x1, y1, x2, y2 = bbox
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = pixels.shape[:2]
    xa, ya = max(0, int(x1 - mx)), max(0, int(y1 - my))
    xb, yb = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    return pixels[ya : max(yb, ya + 1), xa : max(xb, xa + 1)]


def _write_contact_sheets(
    out: Path, images: Sequence[_Image], names: Sequence[str], limit: int = 64
) -> None:
    """Up to `limit` thumbnails per class (and of the hard negatives), decoding an image only
    while one of its classes still wants thumbnails."""
    crops: dict[str, list[np.ndarray]] = defaultdict(list)
    for img in images:
        wanted = [(names[c], b) for c, b in img.boxes if len(crops[names[c]]) < limit]
        negative = not img.boxes and len(crops["_negatives"]) < limit
        if not wanted and not negative:
            continue
        pixels = cv2.imread(str(img.path))
        for name, bbox in wanted:
            crops[name].append(_crop(pixels, bbox))
        if negative:
            crops["_negatives"].append(
                cv2.resize(pixels, (pixels.shape[1] // 4, pixels.shape[0] // 4))
            )
    (out / "contact").mkdir()
    for name, found in crops.items():
        cv2.imwrite(str(out / "contact" / f"{_safe(name)}.png"), contact_sheet(found))


def write_dataset(
    out: Path,
    samples: Iterable[Sample],
    classes: ClassMap,
    source: str,
    val_fraction: float = 0.25,
    skipped: Sequence[str] = (),
    progress: bool = False,
) -> DatasetManifest:
    """Write the dataset into `out` (which must not exist, or be empty); returns its manifest.

    Built in a staging directory beside `out` and renamed into place: a failure leaves nothing
    half-written under `out`.
    """
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} exists and is not empty; choose a new directory")
    stage = out.with_name(f".{out.name}.stage")
    shutil.rmtree(stage, ignore_errors=True)
    pool = stage / ".pool"
    pool.mkdir(parents=True)
    try:
        images, cases = _gather(samples, classes, pool, progress)
        if not any(img.boxes for img in images):
            raise DatasetError("no positive sample: a dataset needs accepted cases with boxes")
        split_by_scene(images, val_fraction)
        entries, digest = _write_files(stage, images, progress)
        pool.rmdir()
        _write_contact_sheets(stage, images, classes.names)
        manifest = _manifest(source, classes, images, entries, cases, digest, skipped)
        (stage / MANIFEST_FILE).write_text(
            manifest.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        write_yaml(stage, out, classes.names)
        if out.exists():
            out.rmdir()
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return manifest


def _write_files(
    stage: Path, images: Sequence[_Image], progress: bool
) -> tuple[list[ImageEntry], str]:
    """The images and label files, and the hash of both (the dataset's identity)."""
    from tqdm import tqdm

    digest = hashlib.sha256()

    for split in SPLITS:
        (stage / "images" / split).mkdir(parents=True)
        (stage / "labels" / split).mkdir(parents=True)
    entries = []
    ordered = sorted(images, key=lambda i: (i.split, i.camera_id, str(i.day), i.sha256))
    for img in tqdm(ordered, desc="writing labels", unit="img", disable=not progress):
        assert img.split is not None
        ext = img.path.suffix
        stem = f"{_safe(img.camera_id)}_{img.day or 'na'}_{img.sha256[:12]}"
        img.path = img.path.replace(stage / "images" / img.split / f"{stem}{ext}")
        labels = yolo_lines(img.boxes, *img.size)
        (stage / "labels" / img.split / f"{stem}.txt").write_text(labels)
        digest.update(f"{img.split}/{stem}{ext}\0{img.sha256}\0{labels}\0".encode())
        entries.append(
            ImageEntry(
                file=f"images/{img.split}/{stem}{ext}",
                split=img.split,
                sha256=img.sha256,
                camera_id=img.camera_id,
                day=None if img.day is None else img.day.isoformat(),
                width=img.size[0],
                height=img.size[1],
                boxes=len(img.boxes),
                cases=img.cases,
            )
        )
    return entries, digest.hexdigest()


def _manifest(
    source: str,
    classes: ClassMap,
    images: Sequence[_Image],
    entries: Sequence[ImageEntry],
    cases: Sequence[CaseEntry],
    digest: str,
    skipped: Sequence[str],
) -> DatasetManifest:
    boxes: dict[Split, dict[str, int]] = {s: dict.fromkeys(classes.names, 0) for s in SPLITS}
    for img in images:
        for cls, _ in img.boxes:
            boxes[img.split][classes.names[cls]] += 1  # type: ignore[index]
    return DatasetManifest(
        source=source,
        names=classes.names,
        incident_classes=classes.incident_classes,
        split_by="camera+day",
        data_sha256=digest,
        images=list(entries),
        cases=list(cases),
        boxes_per_class=boxes,
        images_per_split={s: sum(e.split == s for e in entries) for s in SPLITS},
        negatives_per_split={
            s: sum(e.split == s and e.boxes == 0 for e in entries) for s in SPLITS
        },
        skipped=list(skipped),
    )


def write_yaml(directory: Path, final: Path, names: Sequence[str]) -> None:
    """dataset.yaml as Ultralytics reads it; `path` is where the dataset will finally be."""
    body = {
        "path": str(final.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(names)),
    }
    (directory / YAML_FILE).write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))


def _yolo_yaml(folder: Path) -> tuple[Path, dict]:
    for name in (YAML_FILE, "data.yaml"):
        if (folder / name).is_file():
            try:
                body = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise DatasetError(f"{folder / name}: not YAML ({exc})") from exc
            if not isinstance(body, dict) or "names" not in body:
                raise DatasetError(f"{folder / name}: no 'names' (the class list)")
            return folder / name, body
    raise DatasetError(f"{folder}: no dataset.yaml or data.yaml")


def _names(raw: object, where: Path) -> list[str]:
    if isinstance(raw, list):
        return [str(n) for n in raw]
    if isinstance(raw, dict) and sorted(raw) == list(range(len(raw))):
        return [str(raw[i]) for i in range(len(raw))]
    raise DatasetError(f"{where}: 'names' must be a list or map 0..n-1 to names")


def imported_classes(names: Sequence[str]) -> ClassMap:
    """An imported dataset's own classes: one named after an incident type raises it, COCO
    vehicle names raise illegal parking."""
    from models.manifest import COCO_INCIDENT_CLASSES

    incident: dict[IncidentType, list[str]] = {}
    for type_ in IncidentType:
        own = {type_.value, *COCO_INCIDENT_CLASSES.get(type_, ())} - set(
            COCO_LOOK_ALIKES.get(type_, ())
        )
        if found := [n for n in names if n in own]:
            incident[type_] = found
    return ClassMap(list(names), incident)


def read_yolo_folder(folder: Path) -> tuple[list[Sample], ClassMap]:
    """An existing YOLO dataset (images/<split>/..., labels/<split>/...) as samples, keeping
    its own split; every image becomes a sample, every box a positive."""
    where, body = _yolo_yaml(folder)
    classes = imported_classes(_names(body["names"], where))
    base = Path(str(body.get("path") or ""))
    root = base if base.is_absolute() else folder / base
    if not root.is_dir():  # a folder moved since its yaml was written
        root = folder
    samples: list[Sample] = []
    for split in SPLITS:
        if split not in body:
            raise DatasetError(f"{where}: no '{split}' entry")
        image_dir = root / str(body[split])
        if not image_dir.is_dir():
            raise DatasetError(f"{where}: {split} folder {image_dir} does not exist")
        for path in sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            samples += _folder_samples(path, image_dir, split, classes.names)
    return samples, classes


def _folder_samples(
    path: Path, image_dir: Path, split: Split, names: Sequence[str]
) -> list[Sample]:
    data = path.read_bytes()
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise DatasetError(f"{path}: does not decode as an image")
    height, width = pixels.shape[:2]
    parts = list(path.parts)
    idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    label = Path(*parts[:idx], "labels", *parts[idx + 1 :]) if idx is not None else path
    label = label.with_suffix(".txt")
    case = f"import:{path.relative_to(image_dir.parent)}"
    common = {"case_id": case, "image": data, "camera_id": "imported", "split": split}
    stamp = datetime.fromtimestamp(0, UTC)
    rows = label.read_text(encoding="utf-8").split("\n") if label.is_file() else []
    samples = []
    for n, row in enumerate(r for r in rows if r.strip()):
        fields = row.split()
        try:
            cls, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
        except (ValueError, IndexError):
            raise DatasetError(
                f"{label}:{n + 1}: expected 'class cx cy w h', got {row!r}"
            ) from None
        if not (0 <= cls < len(names)) or len(fields) != 5:
            raise DatasetError(
                f"{label}:{n + 1}: class {fields[0]} is not one of 0..{len(names) - 1}"
            )
        box = (
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        )
        samples.append(
            Sample(role="positive", captured_at=stamp, label=names[cls], bbox=box, **common)
        )
    return samples or [Sample(role="negative", captured_at=stamp, **common)]
