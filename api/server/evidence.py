"""Evidence: uploads read within limits, checked to be images, matched to the report's
evidence refs and attached to a case in the content-addressed store; and a stored image
served back (the API's evidence and signed-media routes, the console's case page)."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from fastapi.responses import FileResponse
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.contract import DWELL_STRIP_MAX, DWELL_THUMB_MAX_SIDE, EvidenceRef
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


# An evidence ref with its upload and, when the worker made one, its rendition's upload.
Pair = tuple[EvidenceRef, Upload, Upload | None]


def match(refs: Sequence[EvidenceRef], uploads: Sequence[Upload]) -> list[Pair]:
    """Pair each evidence ref (and its rendition) with its upload (by file name); all must
    pair, hashes must agree, a rendition must be an image of its original's size."""
    names = [name for r in refs for name in r.files]
    if len(set(names)) != len(names):
        raise Problem(422, "Evidence refs must have distinct file names", kind="evidence-mismatch")
    uploaded = {u.filename: u for u in uploads}
    if len(uploaded) != len(uploads):
        raise Problem(422, "Evidence files must have distinct names", kind="evidence-mismatch")
    if extra := sorted(uploaded.keys() - set(names)):
        raise Problem(422, f"Evidence files not in the report: {extra}", kind="evidence-mismatch")
    if missing := sorted(set(names) - uploaded.keys()):
        raise Problem(
            422, f"Evidence missing from the request: {missing}", kind="evidence-mismatch"
        )
    pairs: list[Pair] = []
    for ref in refs:
        upload = _matching(uploaded, ref.filename, ref.sha256)
        _check_boxes(ref, upload)
        _check_thumbnail(ref, upload)
        rendition = None
        if ref.deidentified is not None:
            rendition = _matching(uploaded, ref.deidentified.filename, ref.deidentified.sha256)
            if (rendition.width, rendition.height) != (upload.width, upload.height):
                raise Problem(
                    422,
                    f"Evidence '{ref.filename}' is {upload.width}x{upload.height} but its "
                    f"rendition '{rendition.filename}' is {rendition.width}x{rendition.height}",
                    kind="evidence-mismatch",
                )
        pairs.append((ref, upload, rendition))
    return pairs


def _matching(uploaded: dict[str, Upload], name: str, sha256: str) -> Upload:
    upload = uploaded[name]
    if upload.sha256 != sha256:
        raise Problem(
            422,
            f"Evidence '{name}' has sha256 {upload.sha256}, the report says {sha256}",
            kind="evidence-mismatch",
        )
    return upload


def _check_thumbnail(ref: EvidenceRef, upload: Upload) -> None:
    """A dwell strip is a row of small frames: a whole frame sent as one is refused."""
    if ref.kind == "dwell" and max(upload.width, upload.height) > DWELL_THUMB_MAX_SIDE:
        raise Problem(
            422,
            f"Evidence '{ref.filename}' is a dwell thumbnail of {upload.width}x{upload.height}: "
            f"neither side may exceed {DWELL_THUMB_MAX_SIDE} pixels",
            kind="invalid-evidence",
        )


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


def frame_of(uploads: Sequence[Upload], refs: Sequence[EvidenceRef]) -> Size | None:
    """The frame a request's evidence shows: its largest image (the others may be crops),
    dwell thumbnails aside (a request of thumbnails only shows no frame)."""
    thumbnails = {r.filename for r in refs if r.kind == "dwell"}
    return largest([(u.width, u.height) for u in uploads if u.filename not in thumbnails])


def camera_frame(session: Session, camera_id: str) -> Size | None:
    """The frame of `camera_id` as its stored evidence shows it: the largest image linked from
    its reports' cases (through the indexed report camera, not a scan of every link); None
    when the API holds no image of it."""
    cases = select(Report.case_seq).where(Report.camera_id == camera_id)
    width, height = session.execute(
        select(func.max(Evidence.width), func.max(Evidence.height))
        .join(CaseEvidence, CaseEvidence.sha256 == Evidence.sha256)
        .where(
            CaseEvidence.case_seq.in_(cases),
            CaseEvidence.camera_id == camera_id,
            CaseEvidence.kind != "dwell",  # thumbnails, not the frame
        )
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
    pairs: Sequence[Pair],
    *,
    report_id: str | None,
    camera_id: str | None,
) -> list[str]:
    """Store the images (and renditions) and link those the case lacks; returns the newly
    linked hashes. A link made before its rendition arrived gets the rendition now."""
    have = {e.sha256: e for e in case.evidence}
    added = []
    for ref, upload, rendition in pairs:
        _store(session, store, written, upload)
        if rendition is not None:
            _store(session, store, written, rendition)
        if upload.sha256 in have:
            link = have[upload.sha256]
            if link.rendition_sha256 is None and rendition is not None:
                link.rendition_sha256 = rendition.sha256
            continue
        have[upload.sha256] = link = CaseEvidence(
            sha256=upload.sha256,
            kind=ref.kind,
            captured_at=ref.captured_at,
            report_id=report_id,
            camera_id=camera_id,
            boxes=[b.model_dump() for b in ref.boxes] or None,
            rendition_sha256=rendition.sha256 if rendition is not None else None,
        )
        case.evidence.append(link)
        added.append(upload.sha256)
    return added


def _store(session: Session, store: EvidenceStore, written: list[str], upload: Upload) -> None:
    """The image in the content-addressed store, with its record."""
    record = session.get(Evidence, upload.sha256)
    if record is not None and record.removed_at is not None:
        return  # an original retention deleted: not stored again
    try:
        stored = store.put(upload.sha256, upload.data)
    except OSError as exc:
        log.error("evidence %s could not be stored: %s", upload.sha256, exc)
        raise Problem(
            507, "The evidence could not be stored; try again later", kind="storage-failed"
        ) from None
    if stored:
        written.append(upload.sha256)
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


def thin_strips(session: Session, store: EvidenceStore, case: Case) -> list[str]:
    """Keeps each report's dwell strip within `DWELL_STRIP_MAX` thumbnails however often it
    is sent: beyond that, the ones evenly spread over its time (the first and the last among
    them) stay and the rest are unlinked, their images (and renditions) deleted when no case
    links them.
    Returns the unlinked hashes. A worker sends at most one strip per report (its first part
    with the report, the rest with the clearing), so this only bounds what others send."""
    strips: dict[str | None, list[CaseEvidence]] = defaultdict(list)
    for link in case.evidence:
        if link.kind == "dwell":
            strips[link.report_id].append(link)
    dropped: list[str] = []
    images: set[str] = set()  # the unlinked thumbnails and their renditions
    for links in strips.values():
        if len(links) <= DWELL_STRIP_MAX:
            continue
        links.sort(key=lambda e: (e.captured_at, e.sha256))
        last = len(links) - 1
        keep = {round(i * last / (DWELL_STRIP_MAX - 1)) for i in range(DWELL_STRIP_MAX)}
        for i, link in enumerate(links):
            if i not in keep:
                case.evidence.remove(link)
                session.delete(link)
                dropped.append(link.sha256)
                images |= {link.sha256, link.rendition_sha256} - {None}
    if not dropped:
        return []
    session.flush()
    still = set(
        session.scalars(select(CaseEvidence.sha256).where(CaseEvidence.sha256.in_(images)))
    ) | set(
        session.scalars(
            select(CaseEvidence.rendition_sha256).where(CaseEvidence.rendition_sha256.in_(images))
        )
    )
    orphans = sorted(images - still)
    if orphans:
        session.execute(delete(Evidence).where(Evidence.sha256.in_(orphans)))
        session.flush()
        # As retention does: removed while the write lock is held, so no request can link
        # one of them meanwhile; a failed commit after this leaves rows that read as 404.
        for sha in orphans:
            store.remove(sha)
    return dropped


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
