"""核查 by the camera: the worker's clearing verifies a dispatched or resolved case (and
closes it where the city lets it); a case the camera still sees after its department
resolved it goes back to the department, not verified, with the evidence."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.server.settings import Settings
from tests.api.conftest import make_api
from tests.api.desk_setup import load_desk
from tests.api.helpers import Api, all_changes, patch
from tests.api.test_desk_dispatch import _move, placed_case


def _api(settings: Settings, **update: Any) -> Iterator[Api]:
    yield from make_api(settings.model_copy(update=update))


@pytest.fixture
def closing_api(settings: Settings) -> Iterator[Api]:
    yield from _api(settings, verified_auto_close=True, verify_clear_s=0)


@pytest.fixture
def strict_api(settings: Settings) -> Iterator[Api]:
    yield from _api(settings, verify_clear_s=0)


def _dispatched(api: Api, photos: list[bytes]) -> str:
    load_desk(api)
    case_id = placed_case(api, photos)
    _move(api.dispatch, case_id, "accepted")
    _move(api.dispatch, case_id, "dispatched")
    return case_id


def _resolve(api: Api, case_id: str) -> dict[str, Any]:
    made = api.admin.post(
        "/v1/keys", json={"name": "东", "scopes": ["department"], "department": "城管东中队"}
    ).raise_for_status()
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    r = httpx.post(
        f"{api.url}/v1/desk/department/cases/{case_id}/resolve",
        json={"actor": "李队员"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _evidence(photos: list[bytes], index: int, kind: str) -> tuple[dict[str, Any], tuple]:
    data = photos[index]
    name = f"{kind}-{index}.jpg"
    ref = {
        "kind": kind,
        "path": f"/var/lib/streetwatch/evidence/{name}",
        "captured_at": datetime.now(UTC).isoformat(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return ref, (name, data)


def _clear(api: Api, case_id: str, photos: list[bytes]) -> str:
    ref, file = _evidence(photos, 7, "cleared")
    now = datetime.now(UTC).isoformat()
    r = patch(api.ingest, case_id, {"cleared_at": now, "evidence": [ref]}, [file])
    assert r.status_code == 200, r.text
    return ref["sha256"]


def test_clearing_verifies_and_closes_a_resolved_case(
    closing_api: Api, photos: list[bytes]
) -> None:
    api = closing_api
    case_id = _dispatched(api, photos)
    _resolve(api, case_id)
    sha = _clear(api, case_id, photos)
    case = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert case["status"] == "closed" and case["verification"] == "verified"
    verified, closed = case["history"][-2:]
    assert verified["kind"] == "verified" and verified["actor"] == "camera"
    assert verified["event_type"] == "case.verified" and verified["data"]["evidence"] == [sha]
    assert (closed["from_status"], closed["to_status"], closed["actor"]) == (
        "resolved",
        "closed",
        "camera",
    )
    assert [c["kind"] for c in all_changes(api.dispatch, page=50)][-2:] == [
        "verified",
        "transition",
    ]


def test_cleared_while_dispatched_closes_when_the_department_resolves(
    closing_api: Api, photos: list[bytes]
) -> None:
    api = closing_api
    case_id = _dispatched(api, photos)
    _clear(api, case_id, photos)
    case = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert case["status"] == "dispatched" and case["verification"] == "verified"
    assert _resolve(api, case_id)["status"] == "closed"


def test_without_auto_close_a_reviewer_closes_it(api: Api, photos: list[bytes]) -> None:
    case_id = _dispatched(api, photos)
    _resolve(api, case_id)
    _clear(api, case_id, photos)
    case = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert case["status"] == "resolved" and case["verification"] == "verified"
    assert _move(api.dispatch, case_id, "closed")["status"] == "closed"


def test_still_seen_after_resolving_goes_back_not_verified(
    strict_api: Api, photos: list[bytes]
) -> None:
    api = strict_api
    case_id = _dispatched(api, photos)
    _resolve(api, case_id)
    ref, file = _evidence(photos, 6, "observation")
    seen = patch(
        api.ingest,
        case_id,
        {"last_seen": datetime.now(UTC).isoformat(), "evidence": [ref]},
        [file],
    )
    assert seen.status_code == 200 and seen.json()["status"] == "dispatched", seen.text
    case = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert case["verification"] == "not_verified" and case["department"] == "城管东中队"
    back = case["history"][-1]
    assert (back["from_status"], back["to_status"], back["actor"]) == (
        "resolved",
        "dispatched",
        "camera",
    )
    assert back["data"]["verification"] == "not_verified"
    assert ref["sha256"] in back["data"]["evidence"]
    assert "still saw the object" in back["note"]
    # The department has it again, and the camera's clearing later verifies it.
    _clear(api, case_id, photos)
    assert api.dispatch.get(f"/v1/cases/{case_id}").json()["verification"] == "verified"


def test_seen_within_the_clear_time_is_not_a_failed_check(api: Api, photos: list[bytes]) -> None:
    case_id = _dispatched(api, photos)  # verify_clear_s: the default two minutes
    _resolve(api, case_id)
    seen = patch(api.ingest, case_id, {"last_seen": datetime.now(UTC).isoformat()})
    assert seen.status_code == 200 and seen.json()["status"] == "resolved"
    assert api.dispatch.get(f"/v1/cases/{case_id}").json()["verification"] is None
