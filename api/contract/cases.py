"""The wire contract between workers and the intake API: one incident report.

`streetwatch score` writes these as JSON lines; `POST /v1/cases` accepts the same fields.
Kept free of server imports so workers can use it without the service's dependencies.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import PureWindowsPath
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# NUL and the other C0 controls (tab, newline and carriage return aside), DEL, and lone
# surrogates: no database stores them faithfully (PostgreSQL refuses NUL outright).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def storable(value: str) -> str:
    """Refuses text a database cannot store as given."""
    if (m := _UNSTORABLE.search(value)) is not None:
        raise ValueError(f"contains the control character U+{ord(m.group()):04X}")
    return value


Storable = AfterValidator(storable)
Id = Annotated[str, Field(min_length=1, max_length=128), Storable]
Code = Annotated[str, Field(min_length=1, max_length=32), Storable]
Short = Annotated[str, Field(min_length=1, max_length=64), Storable]
Address = Annotated[str, Field(max_length=1000), Storable]
Grid = Annotated[str, Field(max_length=64), Storable]
FilePath = Annotated[str, Field(min_length=1, max_length=1024), Storable]
Pixel = Annotated[float, Field(allow_inf_nan=False, ge=-100_000, le=100_000)]
# A licence plate as read: letters, digits and the CJK characters of Chinese plates, no spaces.
Plate = Annotated[str, Field(min_length=2, max_length=16, pattern=r"^[0-9A-Z\u4e00-\u9fff]+$")]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class IncidentType(StrEnum):
    illegal_parking = "illegal_parking"
    street_stall = "street_stall"
    garbage = "garbage"


class CaseStatus(StrEnum):
    """Where a case stands in the 数字城管 workflow (the allowed moves: `api.server.lifecycle`)."""

    reported = "reported"
    accepted = "accepted"  # 立案
    dispatched = "dispatched"  # 派遣
    resolved = "resolved"  # 处置反馈
    closed = "closed"  # 核查结案
    rejected = "rejected"  # 注销: a false report
    duplicate = "duplicate"  # a reviewer merged it into another case


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = Field(
        default=None, description="latitude of the camera"
    )
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = Field(
        default=None, description="longitude of the camera"
    )
    address: Address | None = Field(default=None, description="street address, as written")
    grid: Grid | None = Field(
        default=None, description="单元网格 code of the city's grid system (routes dispatch)"
    )


class Position(BaseModel):
    """Where an incident's object stands on the map: its ground point (the bottom centre of
    its box) through the camera's ground calibration. Only calibrated cameras send one."""

    model_config = ConfigDict(extra="forbid")

    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class EvidenceBox(BaseModel):
    """What was seen where on an evidence image: drawn when the image is shown, never into it."""

    model_config = ConfigDict(extra="forbid")

    # x1, y1, x2, y2 in pixels of the evidence image
    bbox: Annotated[list[Pixel], Field(min_length=4, max_length=4)]
    label: Short  # the class the model saw
    confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _basename(path: str) -> str:
    return PureWindowsPath(path).name  # splits on both / and \\


class Rendition(BaseModel):
    """The de-identified rendition of an evidence image: the same frame with heads (and
    plates, where the plate models are installed) obscured, every other pixel as it was.
    Uploaded beside the original; what public outputs (Open311, webhooks) serve."""

    model_config = ConfigDict(extra="forbid")

    path: FilePath
    sha256: Sha256

    @property
    def filename(self) -> str:
        """The name its file part carries in the request, like `EvidenceRef.filename`."""
        return _basename(self.path)


# A report's dwell strip: at most this many thumbnails sampled over the dwell (kind `dwell`).
DWELL_STRIP_MAX = 8
# A dwell thumbnail is small: neither side of its image may exceed this (pixels).
DWELL_THUMB_MAX_SIDE = 640


class EvidenceRef(BaseModel):
    """One evidence image. `path` is where the worker wrote it; the API keys it by sha256.

    The image is the unaltered frame (for `dwell`, a thumbnail of it); `boxes` say what was
    seen on it, in its own pixels; `deidentified` is its rendition, when the worker made one."""

    model_config = ConfigDict(extra="forbid")

    # `plate`: the rectified crop of a parking incident's plate, the best read of its vote.
    kind: Literal["first_seen", "confirmed", "cleared", "observation", "plate", "dwell"]
    path: FilePath
    captured_at: AwareDatetime
    sha256: Sha256
    boxes: Annotated[list[EvidenceBox], Field(max_length=64)] = Field(default_factory=list)
    deidentified: Rendition | None = Field(
        default=None,
        description="Its de-identified rendition, uploaded beside it: what public outputs show",
    )

    @property
    def filename(self) -> str:
        """The name its file part carries in `POST /v1/cases`: the basename of `path`."""
        return _basename(self.path)

    @property
    def files(self) -> dict[str, str]:
        """File name -> path of what travels with it: the image, then its rendition."""
        files = {self.filename: self.path}
        if self.deidentified is not None:
            files[self.deidentified.filename] = self.deidentified.path
        return files


def strip_bounded(evidence: list[EvidenceRef]) -> list[EvidenceRef]:
    """A report carries at most one strip's worth of dwell thumbnails."""
    if (n := sum(e.kind == "dwell" for e in evidence)) > DWELL_STRIP_MAX:
        raise ValueError(f"{n} dwell thumbnails: a report's strip holds at most {DWELL_STRIP_MAX}")
    return evidence


Evidence = Annotated[list[EvidenceRef], Field(max_length=64), AfterValidator(strip_bounded)]


class CaseReport(BaseModel):
    """An incident as a worker reports it: one site, one type, one occupation."""

    model_config = ConfigDict(extra="forbid")

    id: Id  # deterministic per incident
    type: IncidentType
    event_code: Code
    camera_id: Id
    zone_id: Id
    class_name: Short
    confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    # x1, y1, x2, y2 in pixels of the camera's frame
    bbox: Annotated[list[Pixel], Field(min_length=4, max_length=4)]
    first_seen: AwareDatetime
    confirmed_at: AwareDatetime
    last_seen: AwareDatetime
    cleared_at: AwareDatetime | None = None
    location: Location = Field(default_factory=Location)  # the camera's
    position: Position | None = Field(
        default=None, description="The object's own place, from the camera's calibration"
    )
    evidence: Evidence = Field(default_factory=list)
    plate: Plate | None = Field(
        default=None,
        description="illegal_parking: the vehicle's licence plate, voted over the dwell; "
        "personal data, never published (Open311)",
    )
    plate_confidence: Share | None = Field(
        default=None, description="how sure the vote is of `plate` (0-1)"
    )

    @model_validator(mode="after")
    def _plate_with_confidence(self) -> Self:
        check_plate(self.plate, self.plate_confidence, self.type)
        return self


def check_plate(plate: str | None, confidence: float | None, type_: str | None) -> None:
    """A plate comes with its confidence, and only on a parking report."""
    if (plate is None) != (confidence is None):
        raise ValueError("plate and plate_confidence come together")
    if plate is not None and type_ is not None and type_ != IncidentType.illegal_parking:
        raise ValueError(f"only illegal_parking reports carry a plate, not {type_}")


class CaseReceipt(BaseModel):
    """The answer to `POST /v1/cases`: which case now holds the report."""

    case_id: str
    report_id: str
    merged: bool = Field(description="True when a case opened by another report absorbed this one")
    status: CaseStatus
    report_count: int


class Observation(BaseModel):
    """A later observation of a reported incident, sent as `PATCH /v1/cases/{id}`.

    Idempotent: `last_seen` only moves forward, `cleared_at` is set once, evidence is keyed
    by sha256, so sending the same observation twice changes nothing the second time.
    """

    model_config = ConfigDict(extra="forbid")

    last_seen: AwareDatetime | None = None
    cleared_at: AwareDatetime | None = None
    evidence: Evidence = Field(default_factory=list)
    plate: Plate | None = Field(default=None, description="the plate as the vote has it now")
    plate_confidence: Share | None = None

    @model_validator(mode="after")
    def _plate_with_confidence(self) -> Self:
        check_plate(self.plate, self.plate_confidence, None)
        return self


class ObservationReceipt(BaseModel):
    """The answer to `PATCH /v1/cases/{id}`."""

    case_id: str
    report_ids: list[str] = Field(description="The reports the observation was applied to")
    changed: bool = Field(description="False when the observation was already known")
    status: CaseStatus
    last_seen: datetime
    cleared_at: datetime | None = Field(
        description="Set only once every report of the case is cleared"
    )
