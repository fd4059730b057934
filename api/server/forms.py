"""Parsing JSON carried in a multipart form field into a pydantic model, with clear errors."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from api.server.problems import Problem

M = TypeVar("M", bound=BaseModel)


def parse_json_field(model: type[M], raw: str, field: str) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise Problem(
                400, f"Field '{field}' is not valid JSON: {errors[0]['msg']}", kind="malformed-json"
            ) from None
        raise Problem(
            422,
            f"Field '{field}' does not match the {model.__name__} schema",
            kind="invalid-body",
            errors=[
                {"loc": [field, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors
            ],
        ) from None
