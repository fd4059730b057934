"""Property-based tests generated from our own OpenAPI document (Schemathesis), on both
databases: whatever a client sends, valid by the schema or not, no 5xx; every response has
a status, content type and body its operation declares; every refusal outside Open311 is
a problem document.

Bounded: a few examples per operation and generation mode (`FUZZ_EXAMPLES`, default 8)
and a time budget per operation (`FUZZ_SECONDS`, default 4 s), on a fixed seed, so the run
is the same every time and stays around a minute for both databases."""

from __future__ import annotations

import os
import time
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.helpers import Api

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SECONDS = float(os.environ.get("FUZZ_SECONDS", "4"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _fuzz(operation: Any, mode: GenerationMode, key: str, seen: dict[str, set[int]]) -> None:
    deadline = time.monotonic() + SECONDS / 2
    label = operation.label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure reproduces
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {key}"}, checks=CHECKS, timeout=30
        )
        seen.setdefault(label, set()).add(response.status_code)
        if 400 <= response.status_code < 500 and not case.path.startswith("/open311/"):
            content_type = response.headers.get("content-type", [""])
            if isinstance(content_type, list):
                content_type = content_type[0]
            assert content_type.startswith("application/problem+json"), (
                label,
                response.status_code,
                response.text[:300],
            )

    try:
        run()
    except Unsatisfiable:  # nothing to get wrong: an operation without any input
        assert mode == GenerationMode.NEGATIVE, label


def test_no_input_breaks_the_api(api: Api) -> None:
    key = api.server.create_key("ingest", "open311", "dispatch", "admin", "fleet", name="fuzzer")
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    seen: dict[str, set[int]] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, key, seen)
    assert len(seen) >= 20, sorted(seen)
