"""Who sees which evidence image.

Every evidence image a worker sends comes with a de-identified rendition (heads and plates
obscured; `CaseEvidence.rendition_sha256`). The original goes only to the `dispatch` scope:
the API's evidence routes, the change feed, webhook endpoints set to `original`, and console
sessions of dispatch keys, where every original served to a person is written to the audit
log (`OriginalView`, read by admins). Everything public (Open311's `media_url`, webhook
endpoints left at `deidentified`) and every console session without `dispatch` gets the
rendition, and an image without one (stored before renditions, or a `plate` crop, which is the
plate's proof and is never made public) gets nothing: never the original in its place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.server.auth import Principal
from api.server.clock import now_in
from api.server.secrets import sign_link
from api.server.settings import Settings
from api.server.tables import CaseEvidence, OriginalView

# Evidence kinds that are never public, not even de-identified: a plate crop is the plate.
NEVER_PUBLIC = frozenset({"plate"})

EvidenceView = Literal["deidentified", "original"]
DEIDENTIFIED: EvidenceView = "deidentified"


def public_sha(link: CaseEvidence) -> str | None:
    """The image of `link` that public outputs may show: its rendition, if it has one."""
    return None if link.kind in NEVER_PUBLIC else link.rendition_sha256


def is_rendition(session: Session, sha256: str) -> bool:
    """Whether `sha256` is some evidence image's rendition (an image with nothing to obscure
    is its own rendition: the same bytes)."""
    return (
        session.scalar(
            select(CaseEvidence.id).where(CaseEvidence.rendition_sha256 == sha256).limit(1)
        )
        is not None
    )


def audit(
    session: Session, principal: Principal, actor: str, sha256: str, case_id: str | None, what: str
) -> None:
    """Writes that a person was shown an original (`what`: the image or an annotated copy)."""
    session.add(
        OriginalView(
            at=now_in(session),
            actor=actor,
            api_key_id=principal.key_id,
            sha256=sha256,
            case_id=case_id,
            what=what,
        )
    )


def original_views(
    session: Session, case_id: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[OriginalView]:
    """The audit log, newest first: of one case, and from `since`, when given."""
    query = select(OriginalView).order_by(OriginalView.id.desc()).limit(limit)
    if case_id is not None:
        query = query.where(OriginalView.case_id == case_id)
    if since is not None:
        query = query.where(OriginalView.at >= since)
    return list(session.scalars(query))


def media_url(settings: Settings, server_key: bytes, sha256: str) -> str:
    """A signed link to an image, fetchable without a key until it expires (stable within
    the hour, so a payload made twice is the same)."""
    expires = (int(time.time()) // 3600 + 1) * 3600 + settings.media_link_ttl_s
    path = f"/v1/media/{sha256}"
    signature = sign_link(server_key, path, expires)
    return f"{settings.base_url}{path}?expires={expires}&signature={signature}"


def deidentified_data(data: dict[str, Any], link: Callable[[str], str]) -> dict[str, Any]:
    """A change's `data` as a de-identified output shows it: in its case, each evidence
    entry stands for its rendition (`sha256`, `url` and `annotated_url` name the rendition,
    `deidentified.media_url` is a signed link to it) and entries without one are left out;
    the hashes the change added (`evidence`) are their renditions'."""
    case = data.get("case")
    if not isinstance(case, dict):
        return data
    shown: list[dict[str, Any]] = []
    renditions: dict[str, str] = {}
    for entry in case.get("evidence") or []:
        rendition = entry.get("deidentified")
        if not rendition or entry.get("kind") in NEVER_PUBLIC:
            continue
        sha = rendition["sha256"]
        renditions[entry["sha256"]] = sha
        shown.append(
            {
                **entry,
                "sha256": sha,
                "url": rendition["url"],
                "annotated_url": entry["annotated_url"].replace(entry["sha256"], sha),
                "deidentified": {**rendition, "media_url": link(sha)},
            }
        )
    out = {**data, "case": {**case, "evidence": shown}}
    if isinstance(data.get("evidence"), list):
        out["evidence"] = [renditions[s] for s in data["evidence"] if s in renditions]
    return out
