"""Boxes on evidence: a reviewer's correction of a case's box, and annotated copies.

The stored images stay unaltered; these are the two things done with their boxes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.contract import EvidenceBox, Pixel
from api.contract.annotate import annotate_jpeg
from api.server.auth import Principal
from api.server.changes import record
from api.server.context import Context
from api.server.evidence import EVIDENCE_HEADERS
from api.server.intake import resolve
from api.server.problems import Problem
from api.server.renditions import EvidenceView, public_sha
from api.server.tables import Case


class BoxIn(BaseModel):
    """A reviewer's box for a case: x1, y1, x2, y2 in pixels of its evidence images."""

    model_config = ConfigDict(extra="forbid")

    bbox: Annotated[list[Pixel], Field(min_length=4, max_length=4)]


def set_reviewed_box(
    session: Session, case: Case, bbox: list[float], principal: Principal, actor: str | None = None
) -> None:
    """Store the correction, and a `box_corrected` entry in the case's history with the box
    it replaced (the last correction, else the worker's); refused unless it is a box on the
    case's evidence images."""
    x1, y1, x2, y2 = bbox
    # Dwell thumbnails aside: a box is in pixels of the frames.
    sizes = {
        (e.image.width, e.image.height)
        for e in case.evidence
        if e.image.width and e.kind != "dwell"
    }
    if not sizes:
        raise Problem(409, f"Case {case.id} has no evidence image to correct a box on")
    w = min(s[0] for s in sizes)
    h = min(s[1] for s in sizes)
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise Problem(
            422, f"Box {bbox} is not a box on the case's {w}x{h} images", kind="invalid-box"
        )
    old = case.reviewed_bbox or case.bbox
    case.reviewed_bbox = [float(v) for v in bbox]
    record(session, case, "box_corrected", principal=principal, actor=actor,
           old_bbox=old, bbox=case.reviewed_bbox)  # fmt: skip


def annotated_response(
    ctx: Context, case_id: str, sha256: str, view: EvidenceView = "original"
) -> Response:
    """The case's evidence image `sha256` with its boxes (and the reviewer's) drawn on a
    copy: of the original, or of its de-identified rendition (`view`, or `sha256` naming the
    rendition)."""
    with ctx.db.read() as session:
        case, _ = resolve(session, case_id)
        link = next((e for e in case.evidence if e.sha256 == sha256), None)
        if link is None:  # named by its rendition: the rendition it is
            link = next((e for e in case.evidence if e.rendition_sha256 == sha256), None)
            view = "deidentified"
        if link is None:
            raise Problem(404, f"Case {case.id} has no evidence {sha256}", kind="not-found")
        shown = sha256 if view == "original" else public_sha(link)
        if shown is None:
            raise Problem(
                404, f"Evidence {sha256} has no de-identified rendition", kind="no-rendition"
            )
        boxes = [EvidenceBox.model_validate(b) for b in link.boxes or []]
        caption = f"{link.camera_id or case.camera_id}/{case.zone_id} "
        caption += f"{link.captured_at.isoformat(timespec='seconds')} {link.kind}"
        # The reviewer's box is in pixels of the frames, not of a dwell thumbnail.
        reviewed = case.reviewed_bbox if link.kind != "dwell" else None
        case_name = case.id
    path = ctx.store.path(shown)
    if not path.is_file():
        raise Problem(404, f"No evidence {shown}", kind="not-found")
    try:
        data = annotate_jpeg(path.read_bytes(), boxes, caption, reviewed)
    except ValueError as exc:
        raise Problem(500, f"Evidence {shown} cannot be drawn on: {exc}") from None
    return Response(
        data,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, no-cache",  # a later correction changes it
            "Content-Disposition": f'inline; filename="{case_name}-{shown[:12]}-annotated.jpg"',
            **EVIDENCE_HEADERS,
        },
    )
