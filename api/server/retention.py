"""Retention: what the intake service keeps, and for how long.

- Idempotency records expire after `idempotency_ttl_s` (default 30 days, at least longer
  than a worker keeps retrying or remembers what it delivered); an expired key is a new
  request, and a report sent again after that still lands on its report (report ids are
  kept with their case), so nothing is ever doubled.
- A case in a final status (`closed`, `rejected`, `duplicate`) is deleted, with its
  reports, history, webhook deliveries and the evidence no other case links, once it has
  not changed for `retention_<status>_days`; unset (the default) keeps it for ever.
- Sooner, after `retention_originals_days`, the original evidence images of such a case are
  deleted (their files; the records stay, marked `removed_at`): personal data is kept no
  longer than needed, while the de-identified renditions and the case record stay. An image
  another case still needs (open, or not yet that old), or that is some image's rendition
  (a frame with nothing to obscure is its own rendition), is kept.

`streetwatch prune` runs it once; `streetwatch serve` every `prune_interval_s` (daily).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from api.contract import CaseStatus
from api.server.db import Database
from api.server.settings import Settings
from api.server.storage import EvidenceStore
from api.server.tables import (
    Case,
    CaseEvidence,
    Change,
    Evidence,
    IdempotencyRecord,
    Report,
    WebhookDelivery,
)

log = logging.getLogger(__name__)
_CHUNK = 500


@dataclass
class Pruned:
    idempotency_records: int = 0
    cases: int = 0
    reports: int = 0
    changes: int = 0
    evidence: int = 0
    originals: int = 0  # original images whose files were deleted (their records stay)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def retention_days(settings: Settings) -> dict[CaseStatus, int]:
    days = {
        CaseStatus.closed: settings.retention_closed_days,
        CaseStatus.rejected: settings.retention_rejected_days,
        CaseStatus.duplicate: settings.retention_duplicate_days,
    }
    return {status: d for status, d in days.items() if d is not None}


def expired_idempotency(session: Session, settings: Settings, now: datetime) -> int:
    cutoff = now - timedelta(seconds=settings.idempotency_ttl_s)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return result.rowcount or 0  # type: ignore[attr-defined]


def _delete_cases(session: Session, seqs: list[int], out: Pruned) -> set[str]:
    """Delete the cases and what hangs off them; returns the evidence hashes they linked
    (images and renditions)."""
    links = session.execute(
        select(CaseEvidence.sha256, CaseEvidence.rendition_sha256).where(
            CaseEvidence.case_seq.in_(seqs)
        )
    ).all()
    linked = {sha for link in links for sha in link if sha is not None}
    changes = select(Change.seq).where(Change.case_seq.in_(seqs))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.change_seq.in_(changes)))
    out.changes += session.execute(delete(Change).where(Change.case_seq.in_(seqs))).rowcount or 0  # type: ignore[attr-defined]
    session.execute(delete(CaseEvidence).where(CaseEvidence.case_seq.in_(seqs)))
    out.reports += session.execute(delete(Report).where(Report.case_seq.in_(seqs))).rowcount or 0  # type: ignore[attr-defined]
    out.cases += session.execute(delete(Case).where(Case.seq.in_(seqs))).rowcount or 0  # type: ignore[attr-defined]
    return linked


_FINAL = [CaseStatus.closed.value, CaseStatus.rejected.value, CaseStatus.duplicate.value]


def _remove_originals(db: Database, store: EvidenceStore, cutoff: datetime, now: datetime) -> int:
    """Deletes the files of originals only final cases unchanged since `cutoff` link."""
    done = select(Case.seq).where(Case.status.in_(_FINAL), Case.updated_at < cutoff)
    removed, after = 0, ""
    while True:
        with db.write() as session:
            batch = list(
                session.scalars(
                    select(CaseEvidence.sha256)
                    .join(Evidence, Evidence.sha256 == CaseEvidence.sha256)
                    .where(
                        CaseEvidence.case_seq.in_(done),
                        Evidence.removed_at.is_(None),
                        CaseEvidence.sha256 > after,
                    )
                    .distinct()
                    .order_by(CaseEvidence.sha256)
                    .limit(_CHUNK)
                )
            )
            if not batch:
                return removed
            after = batch[-1]
            needed = set(
                session.scalars(
                    select(CaseEvidence.sha256).where(
                        CaseEvidence.sha256.in_(batch), CaseEvidence.case_seq.not_in(done)
                    )
                )
            ) | set(
                session.scalars(
                    select(CaseEvidence.rendition_sha256).where(
                        CaseEvidence.rendition_sha256.in_(batch)
                    )
                )
            )
            gone = [sha for sha in batch if sha not in needed]
            if gone:
                session.execute(
                    update(Evidence).where(Evidence.sha256.in_(gone)).values(removed_at=now)
                )
                session.flush()
                # Under the write lock, like the case pruning: no request links one meanwhile.
                for sha in gone:
                    store.remove(sha)
                removed += len(gone)


def prune(
    db: Database, settings: Settings, store: EvidenceStore, now: datetime | None = None
) -> Pruned:
    """Apply the retention policy once; returns what it removed."""
    now = now or db.clock()
    out = Pruned()
    with db.write() as session:
        out.idempotency_records = expired_idempotency(session, settings, now)
    for status, days in retention_days(settings).items():
        cutoff = now - timedelta(days=days)
        while True:
            # In chunks, each its own transaction: the write lock is never held for long.
            with db.write() as session:
                seqs = list(
                    session.scalars(
                        select(Case.seq)
                        .where(Case.status == status.value, Case.updated_at < cutoff)
                        .order_by(Case.seq)
                        .limit(_CHUNK)
                    )
                )
                if not seqs:
                    break
                linked = _delete_cases(session, seqs, out)
                still = set(
                    session.scalars(
                        select(CaseEvidence.sha256).where(CaseEvidence.sha256.in_(linked))
                    )
                ) | set(
                    session.scalars(
                        select(CaseEvidence.rendition_sha256).where(
                            CaseEvidence.rendition_sha256.in_(linked)
                        )
                    )
                )
                orphans = sorted(linked - still)
                if orphans:
                    session.execute(delete(Evidence).where(Evidence.sha256.in_(orphans)))
                    session.flush()
                    # Removed while the write lock is held, so no request can link one of
                    # them meanwhile; a failed commit after this would leave rows without
                    # files, which reads answer with 404.
                    for sha in orphans:
                        store.remove(sha)
                    out.evidence += len(orphans)
    if settings.retention_originals_days is not None:
        cutoff = now - timedelta(days=settings.retention_originals_days)
        out.originals = _remove_originals(db, store, cutoff, now)
    if any(asdict(out).values()):
        log.info("pruned %s", ", ".join(f"{v} {k}" for k, v in asdict(out).items() if v))
    return out
