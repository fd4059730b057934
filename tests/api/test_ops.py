"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from tests.api.helpers import Api, post, report

ROOT = Path(__file__).resolve().parents[2]


def test_health_ready_metrics(api: Api, photos: list[bytes]) -> None:
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{api.url}/readyz").json() == {"status": "ready"}
    case, files = report(photos)
    post(api.ingest, case, files).raise_for_status()
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'streetwatch_reports_total{outcome="created"} 1.0' in metrics
    assert 'route="/v1/cases"' in metrics


def test_openapi_document_is_valid_and_complete(api: Api) -> None:
    doc = httpx.get(f"{api.url}/openapi.json").json()
    validate(doc)
    paths = doc["paths"]
    assert {
        "/v1/cases", "/v1/cases/{case_id}", "/v1/cases/{case_id}/transitions", "/v1/changes",
        "/v1/evidence/{sha256}", "/v1/keys", "/v1/webhooks", "/open311/v2/services.{format}",
        "/open311/v2/requests.{format}", "/open311/v2/requests/{service_request_id}.{format}",
        "/open311/v2/discovery.{format}", "/open311/v2/services/{service_code}.{format}",
        "/v1/media/{sha256}",
        "/healthz", "/readyz", "/metrics",
    } <= set(paths)  # fmt: skip
    post_case = paths["/v1/cases"]["post"]
    assert {"200", "201", "400", "401", "403", "413", "422"} <= set(post_case["responses"])
    assert post_case["parameters"][0]["name"] == "Idempotency-Key"
    assert post_case["parameters"][0]["required"] is True
    assert "multipart/form-data" in post_case["requestBody"]["content"]
    transitions = paths["/v1/cases/{case_id}/transitions"]["post"]
    assert "| `resolved` | `closed`, `dispatched` |" in transitions["description"]
    for path in paths.values():
        for op in path.values():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and op["tags"] != ["open311"]:
                    assert set(response["content"]) == {"application/problem+json"}, (op, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_log_lines_are_written_off_the_logging_thread() -> None:
    """Lines are formatted where they are logged (with the request id) but written to stderr
    by a thread of their own: the access log is logged on the event loop (issue 28)."""
    code = """
import logging
from api.server import logs
from api.server.problems import request_id
logs.configure("json", "info")
handler = logging.getLogger().handlers[0]
assert isinstance(handler, logging.handlers.QueueHandler), handler
request_id.set("req-1")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("t").exception("boom %s", "x", extra={"status": 500})
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    record = json.loads(line)
    assert record["message"] == "boom x" and record["request_id"] == "req-1"
    assert record["status"] == 500 and "ZeroDivisionError" in record["exception"]
