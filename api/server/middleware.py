"""ASGI middleware, outermost first:

- `RequestContext`: a request id (the client's `X-Request-ID` if it is a sane token, else a
  new one) on every log line, in every problem document and in the `X-Request-ID` header;
  the access log (with `api_key` and other secrets in the query string redacted); request
  metrics (methods outside HTTP's own set are counted as `other`, so no client can create
  series); `X-Content-Type-Options: nosniff` on every response.
- `RequestGuard`: a path or query string holding control characters (NUL...) is a 400;
  an Open311 path without a format extension gets XML, the spec's default.
- `BodyLimit`: bodies over `max_bytes` are a 413, and a body that takes longer than
  `body_timeout_s` in all, or stalls for `body_idle_timeout_s`, a 408.
And `AuthFirstRoute`, the route class of every router: a request with a body to a route
that needs a key is authenticated from its headers before one byte of the body is read.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import anyio
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.server.metrics import Metrics
from api.server.problems import Problem, request_id, respond

access_log = logging.getLogger("streetwatch.access")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SECRET_PARAMS = frozenset({"api_key", "key", "token", "access_token", "signature", "sig"})
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def redact_query(query: str) -> str:
    """The query string with the values of secret-bearing parameters replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(k, "REDACTED" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe=",:"
    )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return v
    return None


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = (_header(scope, b"x-request-id") or b"").decode("latin-1")
        rid = given if _SANE_ID.fullmatch(given) else secrets.token_hex(8)
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.append((b"x-request-id", rid.encode()))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - start
            # The route template, not the path, keeps label cardinality bounded.
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if self.log_requests:
                query = redact_query(scope.get("query_string", b"").decode("latin-1"))
                target = scope["path"] + (f"?{query}" if query else "")
                client = scope.get("client")
                access_log.info(
                    '%s "%s %s" %d %.1fms',
                    f"{client[0]}:{client[1]}" if client else "-",
                    method,
                    _CONTROL.sub("?", target),
                    status,
                    elapsed * 1000,
                    extra={
                        "http_method": method,
                        "path": _CONTROL.sub("?", scope["path"]),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                        "route": route,
                    },
                )
            request_id.reset(token)


class RequestGuard:
    """Control characters in the path or query can't be stored or compared: 400, early."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = unquote(scope.get("query_string", b"").decode("latin-1"))
            if _CONTROL.search(scope["path"]) or _CONTROL.search(query.replace("+", " ")):
                response = respond(
                    scope["path"],
                    400,
                    "Bad Request",
                    "The path or query string contains control characters",
                    "invalid-characters",
                )
                await response(scope, receive, send)
                return
            path = scope["path"]
            last = path.rsplit("/", 1)[-1]
            if path.startswith("/open311/v2/") and last and "." not in last:
                # Open311's default format is XML: `/services` is `/services.xml`.
                raw = scope.get("raw_path") or path.encode()
                scope = {**scope, "path": path + ".xml", "raw_path": raw + b".xml"}
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413 (by Content-Length up front, else while
    reading) and bodies that arrive too slowly with 408."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, total_timeout_s: float, idle_timeout_s: float
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.total_timeout_s = total_timeout_s
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"The request body is larger than {self.max_bytes} bytes"
        length = _header(scope, b"content-length")
        if length is not None and (
            not re.fullmatch(rb"[0-9]{1,18}", length) or int(length) > self.max_bytes
        ):
            response = respond(scope["path"], 413, "Content Too Large", detail, "body-too-large")
            await response(scope, receive, send)
            return
        received = 0
        deadline = time.monotonic() + self.total_timeout_s
        done = False

        async def limited() -> Message:
            nonlocal received, done
            if done:  # after the body, receive() waits for a disconnect: no deadline there
                return await receive()
            wait = min(self.idle_timeout_s, deadline - time.monotonic())
            with anyio.move_on_after(max(wait, 0)) as timer:
                message = await receive()
            if timer.cancelled_caught:
                raise Problem(
                    408,
                    "The request body arrived too slowly",
                    kind="body-timeout",
                    headers={"Connection": "close"},
                )
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # a chunked body that lied by omission
                raise Problem(413, detail, kind="body-too-large", title="Content Too Large")
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, limited, send)


def _required_scope(route: Any) -> Any:
    """The scope a route's `require(scope)` dependency demands, if any."""
    stack = [getattr(route, "dependant", None)]
    while stack:
        dependant = stack.pop()
        if dependant is None:
            continue
        scope = getattr(dependant.call, "required_scope", None)
        if scope is not None:
            return scope
        stack.extend(dependant.dependencies)
    return getattr(getattr(route, "endpoint", None), "required_scope", None)


class AuthFirstRoute(APIRoute):
    """A route that authenticates a POST, PUT or PATCH from its headers before FastAPI reads
    (and spools) the body; no or a bad key, or a key without the scope, is answered at once.
    The principal is handed on to the route's own `require(scope)` dependency."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        needed = _required_scope(self)
        key_in_form = getattr(self.endpoint, "key_in_form", False)
        if needed is None or not self.methods & {"POST", "PUT", "PATCH"}:
            return handler

        async def authenticate_first(request: Request) -> Response:
            from api.server.auth import authenticate

            ctx = request.app.state.ctx
            key = None
            kind, _, value = request.headers.get("authorization", "").partition(" ")
            if kind.lower() == "bearer" and value.strip():
                key = value.strip()
            if key is None and key_in_form:
                key = request.query_params.get("api_key") or None
                if key is None:  # Open311 clients send api_key in the form: a small one
                    capped = _capped(request.receive, ctx.settings.max_form_bytes)
                    return await handler(Request(request.scope, capped, request._send))

            def check() -> Any:
                with ctx.db.read() as session:
                    return authenticate(session, key, needed)

            principal = await anyio.to_thread.run_sync(check)
            request.scope.setdefault("state", {})["principal"] = principal
            return await handler(request)

        return authenticate_first


def _capped(receive: Receive, max_bytes: int) -> Receive:
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > max_bytes:
            raise Problem(
                413,
                f"An Open311 form without a key in the header or query is limited to "
                f"{max_bytes} bytes",
                kind="body-too-large",
                title="Content Too Large",
            )
        return message

    return capped
