"""Errors as RFC 9457 problem details (`application/problem+json`).

Open311 routes answer in Open311's own error format instead: `[{"code", "description"}]`.
"""

from __future__ import annotations

import contextvars
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
OPEN311_PREFIX = "/open311/"
# Set per request by `api.server.middleware.RequestContext`; in every log line and problem.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class ProblemDetail(BaseModel):
    """An RFC 9457 problem; extra members (such as `errors`) carry details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="URI identifying the problem type")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = Field(None, description="Quote it when asking about the request")


class Problem(HTTPException):
    """Raise anywhere to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status, detail, headers)
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.extensions = extensions


def problem_type(kind: str | None) -> str:
    return f"urn:streetwatch:problem:{kind}" if kind else "about:blank"


def respond(
    path: str,
    status: int,
    title: str,
    detail: str | None,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem response, or an Open311 error list under `/open311/`."""
    if path.startswith(OPEN311_PREFIX):
        from api.server.open311_format import error_response

        return error_response(path, status, detail or title, headers)
    body = ProblemDetail(
        type=problem_type(kind),
        title=title,
        status=status,
        detail=detail,
        instance=path,
        request_id=request_id.get(),
        **extensions,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status, headers=headers, media_type=MEDIA_TYPE
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, Problem):
        return respond(
            request.url.path,
            exc.status_code,
            exc.title,
            exc.detail,
            exc.kind,
            exc.headers,
            **exc.extensions,
        )
    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail != title else None
    return respond(request.url.path, exc.status_code, title, detail, headers=exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    # Open311 reports every bad parameter as 400.
    status = 400 if request.url.path.startswith(OPEN311_PREFIX) else 422
    return respond(
        request.url.path,
        status,
        "Invalid request",
        "The request does not match the schema",
        "invalid-request",
        errors=errors,
    )


async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refused (the checks before it should have caught it): the
    request is at fault, not the server, and nothing was stored (the transaction rolled
    back)."""
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    return respond(
        request.url.path,
        422,
        "Unprocessable Content",
        "A value in the request cannot be stored",
        "unstorable-value",
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return respond(request.url.path, 500, "Internal Server Error", None)


def install(app: FastAPI) -> None:
    from sqlalchemy.exc import DataError

    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give."""
    return {s: {"model": ProblemDetail, "description": HTTPStatus(s).phrase} for s in statuses}


def fix_openapi(schema: dict[str, Any]) -> None:
    """Problem responses are `application/problem+json`, not the `application/json` FastAPI
    assumes for every model response."""
    ref = "#/components/schemas/ProblemDetail"
    fastapi_422 = "#/components/schemas/HTTPValidationError"
    problem = {MEDIA_TYPE: {"schema": {"$ref": ref}}}
    for route, path in schema.get("paths", {}).items():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            # What the middleware may answer on any route: control characters in the path
            # or query (400); a body too large (413) or too slow (408).
            extra = {"400": "Bad Request"}
            if "requestBody" in operation:
                extra |= {"408": "Request Timeout", "413": "Content Too Large"}
            for status, description in extra.items():
                if status in responses:
                    continue
                if route.startswith(OPEN311_PREFIX):
                    responses[status] = {
                        "description": description,
                        "content": {
                            "application/json": responses.get("400", {})
                            .get("content", {})
                            .get("application/json", {}),
                            "text/xml": {},
                        },
                    }
                else:
                    responses[status] = {"description": description, "content": problem}
            if route.startswith(OPEN311_PREFIX):  # its own error format, and 400 for 422
                responses.pop("422", None)
                continue
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                json_ref = content.get("application/json", {}).get("schema", {}).get("$ref")
                if json_ref in (ref, fastapi_422):  # our handler answers 422s as problems
                    content.pop("application/json")
                    content[MEDIA_TYPE] = {"schema": {"$ref": ref}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)
