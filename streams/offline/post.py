"""Posting scored cases to the intake API through the durable outbox the live worker uses
(`api.client.outbox`): each case is queued on disk first, with its incident id as
Idempotency-Key, then delivered, so a case is never lost and never sent twice, however
often the same job is run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from api.client import IntakeClient
from api.client.backoff import Backoff
from api.client.outbox import OUTBOX_FILE, DeadItem, Item, Outbox
from api.contract import CaseReport

# Each case is tried this many times in one run (then it waits in the outbox for the next
# run), jittered so parallel runs spread out.
POST_ATTEMPTS = 4
POST_BACKOFF = Backoff(initial_s=1.0, max_s=8.0)


@dataclass(slots=True)
class PostOutcome:
    """Where each case stands after a run: with the API, waiting in the outbox for the next
    run, or refused for good (a dead letter, for `streetwatch outbox`)."""

    outbox: Path
    total: int
    waiting: list[Item] = field(default_factory=list)
    dead: list[DeadItem] = field(default_factory=list)

    @property
    def posted(self) -> int:
        return self.total - len(self.waiting) - len(self.dead)

    @property
    def complete(self) -> bool:
        """The API holds every case."""
        return not self.waiting and not self.dead


def post_cases(url: str, key: str, cases: list[CaseReport], state_dir: Path) -> PostOutcome:
    """Posts every case through the outbox in `state_dir` (a job's parts directory): what
    the API does not take within POST_ATTEMPTS tries waits there for the next run, what it
    refuses is a dead letter; a case delivered before is not sent again. Raises
    `api.client.OutboxError` when the disk fails under the queue (what is queued stays)."""
    path = state_dir / OUTBOX_FILE
    box = Outbox(path, POST_BACKOFF)
    try:
        for case in cases:
            box.enqueue_report(case)
        with IntakeClient(url, key) as client:
            _drain(box, client)
        ids = {case.id for case in cases}
        return PostOutcome(
            outbox=path,
            total=len(cases),
            waiting=[item for item in box.pending() if item.incident_id in ids],
            dead=[item for item in box.dead() if item.incident_id in ids],
        )
    finally:
        box.close()


def _drain(box: Outbox, client: IntakeClient) -> None:
    """Delivers the queued cases in the order they were queued (the API merges a report into
    an open case at the same site, so an earlier stay must land first): each gets
    POST_ATTEMPTS tries now, whenever its last run left it due; the first that the API does
    not take stops the run, and it and the cases after it wait for the next."""
    for item in box.pending():
        for attempt in range(POST_ATTEMPTS):
            if box.deliver(client, item, None):  # the evidence stays where score wrote it
                break
            left = next((i for i in box.pending() if i.id == item.id), None)
            if left is None:  # refused for good: a dead letter, the next case goes on
                break
            if attempt + 1 == POST_ATTEMPTS:
                return
            time.sleep(max(0.0, left.next_attempt_at - time.time()))
            item = left
