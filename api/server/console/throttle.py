"""Console sign-in attempts per client address: a token bucket each, in this process's memory.

An address may try `attempts` times at once, then once every `window_s / attempts` seconds;
past that its attempts are refused (429 with `Retry-After`) before any work is done, while
every other address signs in as usual. A successful sign-in gives its attempt back, so an
office of reviewers behind one address is limited only by its wrong keys. Each API process
keeps its own buckets, so behind a load balancer an address gets `attempts` per process. The
least recently seen addresses are forgotten past `max_clients` (such an address just starts
afresh), so a flood from many addresses cannot grow the table without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class Throttle:
    def __init__(
        self,
        attempts: int,
        window_s: float,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(attempts)
        self.rate = attempts / window_s  # tokens regained per second
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()  # handlers run on the thread pool

    def take(self, client: str) -> float:
        """0 when `client` may try now (the attempt is counted), else the seconds it must wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1:
                tokens -= 1
                wait = 0.0
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[client] = (tokens, now)  # now the most recently seen
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

    def give_back(self, client: str) -> None:
        """Return the attempt a successful sign-in took."""
        with self._lock:
            if client in self._buckets:
                tokens, at = self._buckets[client]
                self._buckets[client] = (min(self.capacity, tokens + 1), at)
