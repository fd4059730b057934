"""When a camera is looked at: decided on media time, before anything is decoded.

A camera's `SamplePlan` sits between its source and its runtime. The source asks it, at each
keyframe, whether the group of pictures that starts there can be skipped undecoded, and at
each decoded frame whether a sample is due; the runtime tells it, after every sample, how
long it can wait for the next one (`settle`). A plan nobody settles samples at the source's
fixed rate: `fps` on a media-time grid, or every keyframe.

The runtime's interval follows the camera's rules (`SamplePolicy`): the configured rate
(`active_s`) while its rules follow something (a candidate or an open site), and `idle_s`
while they have nothing to follow:
the longest wait that delays no rule by more than a twentieth of its dwell (an arrival seen
that late confirms that late), within the static stage's short-term time constant when it
runs (so it still learns what stops), and never above the camera's `max_interval_s`.

For a file the plan makes scoring deterministic: the source may run at most `lookahead`
samples ahead of the runtime, and waits for it there, so each decision sees the same state
whatever the machine's speed. A live source never waits; it reads the newest state.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from detector.rules import RuleParams
from detector.static_objects import StaticParams

IDLE_DWELL_SHARE = 0.05  # an idle camera sees an arrival at most this share of the dwell late
GAP_SLACK = 1.5  # a step up to this many planned intervals long counts as observed time
FILE_LOOKAHEAD = 4  # samples a file's decoding may run ahead of the rules
EPS = 1e-6


@dataclass(frozen=True, slots=True)
class SamplePolicy:
    """A camera's sample intervals in seconds; `active_s` 0 means every keyframe."""

    active_s: float
    idle_s: float

    def interval(self, busy: bool) -> float:
        return self.active_s if busy else self.idle_s


def policy_for(
    sampling: Sampling,
    adaptive: bool,
    max_interval_s: float,
    rules: Iterable[RuleParams],
    static: StaticParams | None,
) -> SamplePolicy:
    """The intervals a camera's rules need (see the module's docstring)."""
    active = 0.0 if sampling.keyframes or not sampling.fps else 1.0 / sampling.fps
    if not adaptive:
        return SamplePolicy(active, active)
    needs = [max_interval_s, *(p.dwell_s * IDLE_DWELL_SHARE for p in rules)]
    if static is not None:
        needs.append(static.short_term_s)
    return SamplePolicy(active, max(active, min(needs)))


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which decoded frames go to the detector.

    `keyframes` decodes keyframes only (the decoder skips the rest: far cheaper);
    `fps` keeps at most that many frames per second of media time; neither keeps every frame.
    """

    fps: float | None = None
    keyframes: bool = False


class SamplePlan:
    """One camera's next sample time, shared by its source thread and its runtime."""

    def __init__(self, sampling: Sampling, lookahead: int | None = None) -> None:
        self.keyframes = sampling.keyframes
        # The fps grid; 0 with keyframe sampling, or every frame (neither fps nor keyframes).
        self.period_s = 1.0 / sampling.fps if sampling.fps and not sampling.keyframes else 0.0
        self.lookahead = lookahead
        self.stretch = 1.0  # an overloaded worker's factor on every interval (>= 1)
        self.gop_s: float | None = None  # keyframe spacing, as last seen
        self.produced = 0
        self.skipped_groups = 0  # groups of pictures (keyframes only: keyframes) not decoded
        # What the runtime asked for after each settled sample, by count: a file's source
        # reads the entry `lookahead` samples back; a live one the newest.
        self._asked: dict[int, float] = {0: self.period_s}
        self._settled = 0
        self._planned_s = self.period_s
        # (pts, interval planned before it) of samples the runtime has not yet settled.
        self._planned_before: deque[tuple[float, float]] = deque(maxlen=64)
        self._next_due = -math.inf
        self._last_key: float | None = None
        self._closed = False
        self._cond = threading.Condition()

    @property
    def planned_s(self) -> float:
        """The interval planned after the newest sample, stretch included."""
        return self._planned_s

    def planned_before(self, pts: float) -> float:
        """The interval that was planned before the sample at `pts`, stretch included (the
        samples before it that never reached the runtime are forgotten)."""
        with self._cond:
            while self._planned_before:
                at, planned = self._planned_before.popleft()
                if at >= pts:
                    return planned
        return self._planned_s

    # -- source side -----------------------------------------------------------------------

    def wants(self, pts: float) -> bool:
        """Whether a sample is due at `pts`."""
        # Keyframes come a GOP apart: the one nearest the due time is taken.
        slack = 0.5 * self.gop_s if self.keyframes and self.gop_s else EPS
        return pts >= self._next_due - slack

    def skip_group(self, key_pts: float) -> bool:
        """At a keyframe: whether it and the frames up to the next keyframe can go undecoded
        (no sample is due among them)."""
        if self._last_key is not None and key_pts > self._last_key:
            self.gop_s = key_pts - self._last_key
        self._last_key = key_pts
        if self.keyframes:
            skip = not self.wants(key_pts)
        else:
            skip = self.gop_s is not None and key_pts + self.gop_s <= self._next_due + EPS
        self.skipped_groups += skip
        return skip

    def took(self, pts: float) -> None:
        """A sample was taken at `pts`: the next is due one planned interval later (on the
        fps grid, so jitter in timestamps does not drift the sample times)."""
        with self._cond:
            self._planned_before.append((pts, self._planned_s))
        asked = self._asked_for(self.produced + 1)
        base = (self.gop_s or 0.0) if self.keyframes else self.period_s
        interval = self._planned_s = max(asked, base) * self.stretch
        if not self.period_s:
            self._next_due = pts + interval
        else:
            steps = max(1, round(interval / self.period_s))
            self._next_due = (int(pts / self.period_s + EPS) + steps) * self.period_s
        with self._cond:
            self.produced += 1

    def _asked_for(self, n: int) -> float:
        """The interval asked for before sample `n` (counting from 1)."""
        with self._cond:
            if self.lookahead is None:
                return self._asked[self._settled]
            k = max(0, n - self.lookahead)
            self._cond.wait_for(lambda: self._closed or self._settled >= k)
            k = min(k, self._settled)
            for old in [i for i in self._asked if i < k]:
                del self._asked[old]
            return self._asked[k]

    # -- runtime side ----------------------------------------------------------------------

    def settle(self, interval_s: float) -> None:
        """A sample was processed; the next may wait `interval_s` (before any stretch)."""
        with self._cond:
            self._settled += 1
            self._asked[self._settled] = interval_s
            if self.lookahead is None:
                self._asked.pop(self._settled - 1, None)
            self._cond.notify_all()

    def close(self) -> None:
        """Nobody settles any more: a waiting source goes on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
