"""API keys and scopes: 401 without a valid key, 403 without the scope."""

from __future__ import annotations

import httpx

from tests.api.helpers import Api, count_cases, is_problem, post, report


def test_missing_or_bad_key_is_401(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    with httpx.Client(base_url=api.url) as anonymous:
        r = post(anonymous, case, files)
        is_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        is_problem(anonymous.get("/v1/cases"), 401)
    with httpx.Client(base_url=api.url, headers={"Authorization": "Bearer sw_nope"}) as bad:
        is_problem(bad.get("/v1/changes"), 401)
    with httpx.Client(base_url=api.url, headers={"Authorization": "Basic eDp5"}) as basic:
        is_problem(basic.get("/v1/changes"), 401)
    assert count_cases(api.dispatch) == 0


def test_wrong_scope_is_403(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    body = is_problem(post(api.dispatch, case, files), 403)
    assert body["scope"] == "ingest"
    is_problem(api.ingest.get("/v1/cases"), 403)
    is_problem(api.ingest.get("/v1/changes"), 403)
    case_id = post(api.ingest, case, files).json()["case_id"]
    transition = {"to": "accepted", "actor": "worker"}
    is_problem(api.ingest.post(f"/v1/cases/{case_id}/transitions", json=transition), 403)
    is_problem(api.dispatch.post("/v1/keys", json={"name": "x", "scopes": ["admin"]}), 403)
    is_problem(api.dispatch.get("/v1/webhooks"), 403)
    assert api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "reported"


def test_admin_manages_keys_shown_once_and_revocable(api: Api) -> None:
    r = api.admin.post("/v1/keys", json={"name": "dispatch-platform", "scopes": ["dispatch"]})
    assert r.status_code == 201, r.text
    created = r.json()
    key = created.pop("key")
    assert key.startswith("sw_") and created["scopes"] == ["dispatch"]
    listed = api.admin.get("/v1/keys").json()
    assert all("key" not in k and "key_hash" not in k for k in listed)
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as platform:
        assert platform.get("/v1/cases").status_code == 200
        api.admin.delete(f"/v1/keys/{created['id']}").raise_for_status()
        is_problem(platform.get("/v1/cases"), 401)
