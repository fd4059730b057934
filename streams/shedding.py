"""Graceful overload: when the worker falls behind, every camera is sampled slower by one
factor (fair: each keeps its share of the samples), and faster again once it catches up.

The signal is lag, capture to the end of inference, of the samples in each batch. Once per
`window_s` (time for a new rate to show), the worst lag in the window decides: above
`high_s` the stretch grows by `step`, below `low_s` it shrinks back towards 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadShedder:
    high_s: float = 1.0
    low_s: float = 0.4
    step: float = 1.25
    max_stretch: float = 8.0
    window_s: float = 3.0
    stretch: float = 1.0
    _window_lag: float = 0.0
    _window_start: float | None = None

    def observe(self, lag_s: float, now: float) -> float | None:
        """Notes a sample's lag; returns the new stretch when it changes."""
        self._window_lag = max(self._window_lag, lag_s)
        if self._window_start is None:
            self._window_start = now
        if now - self._window_start < self.window_s:
            return None
        worst, self._window_lag, self._window_start = self._window_lag, 0.0, now
        if worst > self.high_s and self.stretch < self.max_stretch:
            stretch = min(self.stretch * self.step, self.max_stretch)
        elif worst < self.low_s and self.stretch > 1.0:
            stretch = max(self.stretch / self.step, 1.0)
        else:
            return None
        if stretch > self.stretch:
            log.warning(
                "worker behind (lag up to %.1f s): every camera sampled %.2fx slower",
                worst,
                stretch,
            )
        else:
            log.info(
                "worker caught up (lag %.1f s): sampling at %.2fx its interval", worst, stretch
            )
        self.stretch = stretch
        return stretch
