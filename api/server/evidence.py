"""Evidence: uploads read within limits, checked to be images, matched to the report's
evidence refs and attached to a case in the content-addressed store; and a stored image
served back (the API's evidence and signed-media routes, the console's case page)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from fastapi.responses import FileResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.contract import EvidenceRef
from api.server.clock import now_in
from api.server.context import Context
from api.server.images import ImageError, ImageInfo, check_image, inspect
from api.server.problems import Problem
from api.server.storage import EvidenceStore
from api.server.tables import Case, CaseEvidence, Evidence, Report
from api.server.validation import Size, largest, on_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    sha256: str
    content_type: str
    width: int
    height: int


def read_uploads(
    files: Sequence[tuple[str | None, BinaryIO]],
    max_files: int,
    max_bytes: int,
    max_pixels: int = 40_000_000,
) -> list[Upload]:
    """Read (filename, file) pairs; refuse too many, too large, or anything not an image.

    Every file's structure and declared size is checked before any file is decoded, so a
    request full of decompression bombs costs a header read each."""
    if len(files) > max_files:
        raise Problem(413, f"At most {max_files} evidence files per request", kind="too-many-files")
    read: list[tuple[str, bytes, ImageInfo]] = []
    for filename, f in files:
        name = filename or ""
        data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise Problem(
                413,
                f"Evidence '{name}' is larger than {max_bytes} bytes",
                kind="evidence-too-large",
            )
        try:
            info = inspect(data, max_pixels)
        except ImageError as exc:
            too_big = "over the limit" in str(exc)
            raise Problem(
                422,
                f"Evidence '{name}' is refused: {exc}",
                kind="image-too-large" if too_big else "invalid-evidence",
            ) from None
        read.append((name, data, info))
    uploads = []
    for name, data, info in read:
        try:
            check_image(data, max_pixels)
        except ImageError as exc:
            raise Problem(
                422,
                f"Evidence '{name}' is not a JPEG or PNG image that decodes: {exc}",
                kind="invalid-evidence",
            ) from None
        uploads.append(
            Upload(
                name,
                data,
                hashlib.sha256(data).hexdigest(),
                info.media_type,
                info.width,
                info.height,
            )
        )
    return uploads


def match(
    refs: Sequence[EvidenceRef], uploads: Sequence[Upload]
) -> list[tuple[EvidenceRef, Upload]]:
    """Pair each evidence ref with its upload (by file name); all must pair, hashes must agree."""
    by_name = {r.filename: r for r in refs}
    if len(by_name) != len(refs):
        raise Problem(422, "Evidence refs must have distinct file names", kind="evidence-mismatch")
    uploaded = {u.filename: u for u in uploads}
    if len(uploaded) != len(uploads):
        raise Problem(422, "Evidence files must have distinct names", kind="evidence-mismatch")
    if extra := sorted(uploaded.keys() - by_name.keys()):
        raise Problem(422, f"Evidence files not in the report: {extra}", kind="evidence-mismatch")
    if missing := sorted(by_name.keys() - uploaded.keys()):
        raise Problem(
            422, f"Evidence missing from the request: {missing}", kind="evidence-mismatch"
        )
    pairs = []
    for name, ref in by_name.items():
        upload = uploaded[name]
        if upload.sha256 != ref.sha256:
            raise Problem(
                422,
                f"Evidence '{name}' has sha256 {upload.sha256}, the report says {ref.sha256}",
                kind="evidence-mismatch",
            )
        _check_boxes(ref, upload)
        pairs.append((ref, upload))
    return pairs


def _check_boxes(ref: EvidenceRef, upload: Upload) -> None:
    """Boxes must be boxes on this image (a pixel of rounding allowed at the edges)."""
    for i, box in enumerate(ref.boxes):
        if not on_image(box.bbox, (upload.width, upload.height)):
            raise Problem(
                422,
                f"Evidence '{ref.filename}' box {i} {box.bbox} is not a box on its "
                f"{upload.width}x{upload.height} image",
                kind="evidence-mismatch",
            )


def frame_of(uploads: Sequence[Upload]) -> Size | None:
    """The frame a request's evidence shows: its largest image (the others may be crops)."""
    return largest([(u.width, u.height) for u in uploads])


def camera_frame(session: Session, camera_id: str) -> Size | None:
    """The frame of `camera_id` as its stored evidence shows it: the largest image linked from
    its reports' cases (through the indexed report camera, not a scan of every link); None
    when the API holds no image of it."""
    cases = select(Report.case_seq).where(Report.camera_id == camera_id)
    width, height = session.execute(
        select(func.max(Evidence.width), func.max(Evidence.height))
        .join(CaseEvidence, CaseEvidence.sha256 == Evidence.sha256)
        .where(CaseEvidence.case_seq.in_(cases), CaseEvidence.camera_id == camera_id)
    ).one()
    return (width, height) if width and height else None


@contextmanager
def staged(store: EvidenceStore) -> Iterator[list[str]]:
    """Collects hashes this request newly wrote; removes those files if the request fails."""
    written: list[str] = []
    try:
        yield written
    except BaseException:
        for sha in written:
            store.remove(sha)
        raise


def attach(
    session: Session,
    store: EvidenceStore,
    written: list[str],
    case: Case,
    pairs: Sequence[tuple[EvidenceRef, Upload]],
    *,
    report_id: str | None,
    camera_id: str | None,
) -> list[str]:
    """Store the images and link those the case lacks; returns the newly linked hashes."""
    have = {e.sha256 for e in case.evidence}
    added = []
    for ref, upload in pairs:
        try:
            stored = store.put(upload.sha256, upload.data)
        except OSError as exc:
            log.error("evidence %s could not be stored: %s", upload.sha256, exc)
            raise Problem(
                507, "The evidence could not be stored; try again later", kind="storage-failed"
            ) from None
        if stored:
            written.append(upload.sha256)
        record = session.get(Evidence, upload.sha256)
        if record is None:
            session.add(
                Evidence(
                    sha256=upload.sha256,
                    size=len(upload.data),
                    content_type=upload.content_type,
                    created_at=now_in(session),
                    width=upload.width,
                    height=upload.height,
                )
            )
            session.flush()  # the row must exist before a case links to it
        elif record.width is None:  # stored before sizes were kept
            record.width, record.height = upload.width, upload.height
        if upload.sha256 in have:
            continue
        have.add(upload.sha256)
        case.evidence.append(
            CaseEvidence(
                sha256=upload.sha256,
                kind=ref.kind,
                captured_at=ref.captured_at,
                report_id=report_id,
                camera_id=camera_id,
                boxes=[b.model_dump() for b in ref.boxes] or None,
            )
        )
        added.append(upload.sha256)
    return added


# Evidence is shown as an image and nothing else: no sniffing, no scripts, no document.
EVIDENCE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}


def image_response(ctx: Context, sha256: str, cache: str) -> FileResponse:
    """A stored image as its own download, with `cache` as its Cache-Control."""
    with ctx.db.read() as session:
        record = session.get(Evidence, sha256)
    path = ctx.store.path(sha256)
    if record is None or not path.is_file():
        raise Problem(404, f"No evidence {sha256}", kind="not-found")
    name = f"{sha256}.{_EXTENSIONS.get(record.content_type, 'bin')}"
    return FileResponse(
        path,
        media_type=record.content_type,
        headers={
            "Cache-Control": cache,
            "ETag": f'"{sha256}"',
            "Content-Disposition": f'inline; filename="{name}"',
            **EVIDENCE_HEADERS,
        },
    )
