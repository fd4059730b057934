"""Graceful overload: when the worker falls behind, every camera is sampled slower by one
factor (fair: each keeps its share of the samples), and faster again once it catches up.

Falling behind shows two ways: lag (capture to the end of inference) grows, or, since each
camera's mailbox keeps only its newest sample, samples are replaced before the loop takes
them. Once per `window_s` (time for a new rate to show) the window is judged: behind when
its worst lag is above `high_s` or more than `high_drop` of the samples were replaced, caught
up when lag stayed below `low_s` with at most `low_drop` replaced. Two windows behind in a
row (a start-up burst or a neighbour's spike is one) grow the stretch by `step`; a window
caught up shrinks it back towards 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Totals = Callable[[], tuple[int, int]]
"""Samples produced and samples replaced unseen, summed over the cameras, so far."""


@dataclass(slots=True)
class LoadShedder:
    totals: Totals = lambda: (0, 0)  # no drop counts: lag alone decides
    high_s: float = 1.0
    low_s: float = 0.6
    high_drop: float = 0.05
    low_drop: float = 0.01
    step: float = 1.25
    max_stretch: float = 8.0
    window_s: float = 3.0
    stretch: float = 1.0
    _window_lag: float = 0.0
    _window_start: float | None = None
    _counted: tuple[int, int] = (0, 0)
    _behind: int = 0  # windows behind in a row

    def observe(self, lag_s: float, now: float) -> float | None:
        """Notes a sample's lag; returns the new stretch when it changes."""
        self._window_lag = max(self._window_lag, lag_s)
        if self._window_start is None:
            self._window_start, self._counted = now, self.totals()
            return None
        if now - self._window_start < self.window_s:
            return None
        (produced, dropped), (produced_0, dropped_0) = self.totals(), self._counted
        drop = (dropped - dropped_0) / max(produced - produced_0, 1)
        worst = self._window_lag
        self._window_lag, self._window_start, self._counted = 0.0, now, (produced, dropped)
        behind = worst > self.high_s or drop > self.high_drop
        self._behind = self._behind + 1 if behind else 0
        if self._behind >= 2 and self.stretch < self.max_stretch:
            stretch = min(self.stretch * self.step, self.max_stretch)
        elif worst < self.low_s and drop <= self.low_drop and self.stretch > 1.0:
            stretch = max(self.stretch / self.step, 1.0)
        else:
            return None
        if stretch > self.stretch:
            log.warning(
                "worker behind (lag up to %.1f s, %.0f%% of samples replaced unseen): every "
                "camera sampled %.2fx slower",
                worst,
                100 * drop,
                stretch,
            )
        else:
            log.info(
                "worker caught up (lag %.1f s): sampling at %.2fx its interval", worst, stretch
            )
        self.stretch = stretch
        return stretch
