"""Running the app under uvicorn with the service's own connection rules and logging.

uvicorn closes idle keep-alive connections but waits forever for a request's headers; the
protocol here closes a connection whose headers take longer than `header_timeout_s` (a
slow-loris client holds nothing for long). Body timeouts are `api.server.middleware.BodyLimit`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.server.settings import Settings


class HeaderTimeoutH11(H11Protocol):
    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # still no request line
            self.logger.info("closing a connection whose request headers were too slow")
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        between = self.cycle is None or self.cycle.response_complete
        if between and getattr(self, "_header_timer", None) is None:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # the headers are complete: a request began
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    protocol = type(
        "HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout_s": settings.header_timeout_s}
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": protocol,
        "timeout_keep_alive": settings.keep_alive_s,
        "access_log": False,  # RequestContext logs each request, with secrets redacted
        "log_config": None,  # logging is configured by api.server.logs
        "server_header": False,
        "lifespan": "on",
        **overrides,
    }
    return uvicorn.Config(app, **options)
