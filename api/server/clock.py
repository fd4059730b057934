"""The server's one clock: every time it records (a change's `at`, a case's dispatch,
deadline, resolution, a suppression's or a key's dates) and every time it compares against
"now" (overdue, expiry, retention, fleet liveness, webhook schedules) comes from here.

It is the wall clock, moved by an offset a test sets to pass a deadline without waiting (the
clock keeps running from there, so later changes stay in order). The database carries it
(`Database.clock`, and `now_in(session)` in every session it opens), so code deep in a
transaction reads the same "now" as the request handler that opened it.

Left on the wall clock on purpose, because a party outside the server checks them against its
own: console session cookies, signed links' expiry and webhook signature timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session


def wall() -> datetime:
    return datetime.now(UTC)


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return wall() + self.offset

    def move_to(self, at: datetime) -> None:
        """From now on "now" is `at`, and runs on from it."""
        self.offset = at - wall()


def now_in(session: Session) -> datetime:
    """The time on the clock of the database the session belongs to."""
    clock: Clock = session.info["clock"]
    return clock()
