"""The wire contract: what a worker sends, what the API answers, and the words both use.

Owns the incident types and case report (`cases`), the event-code tables (`codes`), the
suppression rules and schedules (`suppression_rules`), the fleet's assignment types and rule
(`fleet`) and the one drawing of boxes on evidence (`annotate`). Every package may import it;
it imports nothing from `api.client`, `api.server`, `detector`, `models` or `streams`, and
nothing heavier than pydantic, numpy and OpenCV.
"""

from api.contract.annotate import annotate, annotate_jpeg
from api.contract.cases import (
    DWELL_STRIP_MAX,
    DWELL_THUMB_MAX_SIDE,
    Address,
    CaseReceipt,
    CaseReport,
    CaseStatus,
    Code,
    EvidenceBox,
    EvidenceRef,
    FilePath,
    Grid,
    Id,
    IncidentType,
    Location,
    Observation,
    ObservationReceipt,
    Pixel,
    Position,
    Rendition,
    Short,
    Storable,
    storable,
)
from api.contract.codes import DEFAULT_CODES, CodeTable, EventCode
from api.contract.fleet import AssignedCamera, Assignment, FleetCameraIn, Heartbeat, owner, share
from api.contract.suppression_rules import (
    DEFAULT_TZ,
    SUPPRESSING,
    RejectReason,
    Schedule,
    SuppressionOptions,
    SuppressionRule,
    Window,
    iou,
)

__all__ = [
    "DEFAULT_CODES",
    "DEFAULT_TZ",
    "DWELL_STRIP_MAX",
    "DWELL_THUMB_MAX_SIDE",
    "SUPPRESSING",
    "Address",
    "AssignedCamera",
    "Assignment",
    "CaseReceipt",
    "CaseReport",
    "CaseStatus",
    "Code",
    "CodeTable",
    "EventCode",
    "EvidenceBox",
    "EvidenceRef",
    "FilePath",
    "FleetCameraIn",
    "Grid",
    "Heartbeat",
    "Id",
    "IncidentType",
    "Location",
    "Observation",
    "ObservationReceipt",
    "Pixel",
    "Position",
    "RejectReason",
    "Rendition",
    "Schedule",
    "Short",
    "Storable",
    "SuppressionOptions",
    "SuppressionRule",
    "Window",
    "annotate",
    "annotate_jpeg",
    "iou",
    "owner",
    "share",
    "storable",
]
