"""GET /v1/cases filters and cursor pagination; evidence by sha256."""

from __future__ import annotations

from datetime import timedelta

from tests.api.helpers import FAR, T0, Api, is_problem, post, report


def _ids(api: Api, **params: object) -> set[str]:
    r = api.dispatch.get("/v1/cases", params=params)
    assert r.status_code == 200, r.text
    return {c["id"] for c in r.json()["items"]}


def test_filters(api: Api, photos: list[bytes]) -> None:
    stall, files = report(photos, camera="cam-a")
    stall_id = post(api.ingest, stall, files).json()["case_id"]
    far, files = report(photos, camera="cam-b", at=FAR, type_="garbage", code="06010",
                        start=T0 + timedelta(hours=5))  # fmt: skip
    far_id = post(api.ingest, far, files).json()["case_id"]
    api.dispatch.post(
        f"/v1/cases/{far_id}/transitions", json={"to": "accepted", "actor": "li"}
    ).raise_for_status()

    assert _ids(api) == {stall_id, far_id}
    assert _ids(api, status="accepted") == {far_id}
    assert _ids(api, status=["accepted", "reported"]) == {stall_id, far_id}
    assert _ids(api, type="street_stall") == {stall_id}
    assert _ids(api, camera="cam-b") == {far_id}
    assert _ids(api, grid="330102001") == {stall_id, far_id}
    assert _ids(api, grid="nowhere") == set()
    assert _ids(api, since=(T0 + timedelta(hours=1)).isoformat()) == {far_id}
    assert _ids(api, until=(T0 + timedelta(hours=1)).isoformat()) == {stall_id}
    assert _ids(api, bbox="120.15,30.27,120.16,30.28") == {stall_id}
    is_problem(api.dispatch.get("/v1/cases", params={"bbox": "1,2,3"}), 400)
    is_problem(api.dispatch.get("/v1/cases", params={"status": "nope"}), 422)
    is_problem(api.dispatch.get("/v1/cases", params={"since": "2025-01-01T00:00:00"}), 400)


def test_cursor_pagination_visits_each_case_once(api: Api, photos: list[bytes]) -> None:
    posted = set()
    for i in range(7):
        case, files = report(photos, camera=f"c{i}", at=(30.0 + i * 0.01, 120.0), n_evidence=1)
        posted.add(post(api.ingest, case, files).json()["case_id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.dispatch.get("/v1/cases", params=params).json()
        seen += [c["id"] for c in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(seen) == 7 and set(seen) == posted
    is_problem(api.dispatch.get("/v1/cases", params={"cursor": "!!"}), 400)


def test_case_by_report_id_and_evidence_lookup(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    case_id = post(api.ingest, case, files).json()["case_id"]
    assert api.dispatch.get(f"/v1/cases/{case.id}").json()["id"] == case_id
    is_problem(api.dispatch.get("/v1/cases/cs_nope"), 404)
    is_problem(api.dispatch.get(f"/v1/evidence/{'0' * 64}"), 404)
    is_problem(api.dispatch.get("/v1/evidence/..%2F..%2Fetc%2Fpasswd"), 404)  # no route
    is_problem(api.dispatch.get(f"/v1/evidence/{'A' * 64}"), 422)  # not a lowercase sha256
    r = api.dispatch.get(f"/v1/evidence/{case.evidence[1].sha256}")
    assert r.content == files[1][1] and r.headers["etag"] == f'"{case.evidence[1].sha256}"'
