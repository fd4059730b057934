"""Capped exponential backoff with full jitter: cameras behind one dead switch, or workers
behind one dead API, don't retry in lockstep."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 300.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        cap = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))
        return random.uniform(0.0, cap)
