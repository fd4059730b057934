"""A small typed client for the intake API, as workers use it.

Failures come in two kinds, so a caller (the outbox) knows what to do:
`RetryableError` (connection errors, timeouts, 429, 5xx): try again later;
`RejectedError` (any other 4xx): the request itself is wrong, retrying will not help.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from api.contract.cases import CaseReceipt, CaseReport, EvidenceRef, Observation, ObservationReceipt
from api.contract.fleet import (
    Assignment,
    FleetCameraIn,
    Heartbeat,
    ReportedIncident,
    ReportedIncidents,
)
from api.contract.suppression_rules import SuppressionRule


class IntakeError(Exception):
    """Any failure to get a request accepted."""


class RetryableError(IntakeError):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RejectedError(IntakeError):
    """A permanent 4xx; `problem` is the server's problem document (RFC 9457)."""

    def __init__(self, status: int, problem: dict[str, Any]):
        super().__init__(f"{status}: {problem.get('detail') or problem.get('title')}")
        self.status = status
        self.problem = problem


EvidenceSource = Path | str | Iterable[Path | str] | None


def _evidence_files(refs: list[EvidenceRef], evidence: EvidenceSource) -> list[tuple[str, bytes]]:
    """Each ref's bytes and its rendition's: from a directory (by basename), a list of
    paths, or the ref's own paths."""
    files = {name: path for r in refs for name, path in r.files.items()}  # with renditions
    if evidence is None:
        paths = {name: Path(path) for name, path in files.items()}
    elif isinstance(evidence, str | Path) and Path(evidence).is_dir():
        paths = {name: Path(evidence) / name for name in files}
    else:
        given = [evidence] if isinstance(evidence, str | Path) else evidence
        by_name = {Path(p).name: Path(p) for p in given}
        paths = {name: by_name.get(name, Path(path)) for name, path in files.items()}
    return [(name, path.read_bytes()) for name, path in paths.items()]


def _multipart(field: str, body: BaseModel, files: list[tuple[str, bytes]]) -> list[Any]:
    """The JSON as a form field (no filename) and the images as `evidence` file parts."""
    return [
        (field, (None, body.model_dump_json(), "application/json")),
        *(("evidence", (name, data, "image/jpeg")) for name, data in files),
    ]


class IntakeClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def post_case(
        self, report: CaseReport, evidence: EvidenceSource, idempotency_key: str
    ) -> CaseReceipt:
        """Post a report with its evidence; safe to repeat with the same key."""
        response = self._request(
            "POST",
            "/v1/cases",
            files=_multipart("case", report, _evidence_files(report.evidence, evidence)),
            headers={"Idempotency-Key": idempotency_key},
        )
        return CaseReceipt.model_validate_json(response.content)

    def patch_case(
        self, case_or_report_id: str, observation: Observation, evidence: EvidenceSource = None
    ) -> ObservationReceipt:
        """Send a later observation (last seen, cleared, new evidence); idempotent."""
        files = _evidence_files(observation.evidence, evidence)
        response = self._request(
            "PATCH",
            f"/v1/cases/{quote(case_or_report_id, safe='')}",
            files=_multipart("observation", observation, files),
        )
        return ObservationReceipt.model_validate_json(response.content)

    def get_suppressions(self) -> list[SuppressionRule]:
        """The sites reviewers suppressed (for the cameras this key may report for)."""
        response = self._request("GET", "/v1/suppressions")
        return [SuppressionRule.model_validate(item) for item in response.json()["items"]]

    def post_camera_health(
        self, camera_id: str, health: dict[str, Any], thumbnail: bytes | None = None
    ) -> None:
        """Report a camera's state (`up`, `reconnecting`, `dead`, ...) and a recent picture."""
        import json

        files: list[Any] = [("health", (None, json.dumps(health), "application/json"))]
        if thumbnail is not None:
            files.append(("thumbnail", ("thumbnail.jpg", thumbnail, "image/jpeg")))
        self._request("POST", f"/v1/cameras/{quote(camera_id, safe='')}/health", files=files)

    # -- the fleet (api/contract/fleet.py) -------------------------------------------------

    def heartbeat(self, worker_id: str, running: list[str], leaving: bool = False) -> Assignment:
        """Says what this worker runs; the answer is what it should run now."""
        body = Heartbeat(running=running, leaving=leaving).model_dump(mode="json")
        response = self._request(
            "POST", f"/v1/fleet/workers/{quote(worker_id)}/heartbeat", json=body
        )
        return Assignment.model_validate_json(response.content)

    def put_camera_state(self, worker_id: str, camera_id: str, data: bytes) -> None:
        """Hands a camera's open sites over to whichever worker runs it next."""
        files = [("state", ("state.tar", data, "application/x-tar"))]
        url = f"/v1/fleet/workers/{quote(worker_id)}/cameras/{quote(camera_id, safe='')}/state"
        self._request("PUT", url, files=files)

    def get_camera_state(self, camera_id: str) -> bytes | None:
        """The camera's open sites as its last worker handed them over; None if none."""
        try:
            response = self._request("GET", f"/v1/fleet/cameras/{quote(camera_id, safe='')}/state")
        except RejectedError as exc:
            if exc.status == 404:
                return None
            raise
        return response.content

    def camera_reports(self, camera_id: str) -> list[ReportedIncident]:
        """This key's reports for the camera of the last 24 h, as the API holds them now."""
        url = f"/v1/fleet/cameras/{quote(camera_id, safe='')}/reports"
        return ReportedIncidents.model_validate_json(self._request("GET", url).content).items

    def put_fleet_camera(self, camera_id: str, definition: dict[str, Any]) -> None:
        body = FleetCameraIn(definition=definition).model_dump(mode="json")
        self._request("PUT", f"/v1/fleet/cameras/{quote(camera_id, safe='')}", json=body)

    def delete_fleet_camera(self, camera_id: str) -> None:
        self._request("DELETE", f"/v1/fleet/cameras/{quote(camera_id, safe='')}")

    def fleet_cameras(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/fleet/cameras").json()["items"]

    def list_cases(self, statuses: Iterable[str] = (), page: int = 200) -> Iterator[dict[str, Any]]:
        """Every case in these statuses (the `CaseOut` JSON), newest first, page by page."""
        params: dict[str, Any] = {"status": list(statuses), "limit": page}
        while True:
            body = self._request("GET", "/v1/cases", params=params).json()
            yield from body["items"]
            if not body["next_cursor"]:
                return
            params["cursor"] = body["next_cursor"]

    def get_case(self, case_id: str) -> dict[str, Any]:
        """One case with its history (the `CaseDetail` JSON)."""
        return self._request("GET", f"/v1/cases/{quote(case_id, safe='')}").json()

    def get_evidence(self, sha256: str) -> bytes:
        """An evidence image as stored: the unaltered frame."""
        return self._request("GET", f"/v1/evidence/{quote(sha256, safe='')}").content

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return response
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = response.headers.get("Retry-After")
            raise RetryableError(
                f"{status} from {url}",
                status=status,
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase, "detail": response.text[:500]}
        if not isinstance(problem, dict):  # Open311 errors are lists
            problem = {"detail": str(problem)}
        raise RejectedError(status, problem)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IntakeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
