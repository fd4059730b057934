"""The console's security and the feedback loop's API, over real HTTP (no browser here: the
browser test is tests/console/test_console_browser.py)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import cv2
import httpx
import numpy as np
import pytest
from starlette.requests import Request

from api.server.console.sessions import cookie_options
from api.server.tables import CameraHealth, ConsoleSession
from tests.api.helpers import Api, post, report


def sign_in(api: Api, key: str) -> tuple[httpx.Client, httpx.Response]:
    browser = httpx.Client(base_url=api.url)
    page = browser.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = browser.post("/console/login", data={"key": key, "csrf": token})
    return browser, response


def csrf_of(html: str) -> str:
    return re.search(r'data-csrf="([^"]+)"', html).group(1)


def test_pages_carry_a_restrictive_csp_and_nosniff(sqlite_api: Api, photos):
    case, files = report(photos)
    assert post(sqlite_api.ingest, case, files).status_code == 201
    key = sqlite_api.server.create_key("dispatch", name="reviewer")
    browser, response = sign_in(sqlite_api, key)
    assert response.status_code == 303
    case_id = sqlite_api.dispatch.get("/v1/cases").json()["items"][0]["id"]
    sha = sqlite_api.dispatch.get(f"/v1/cases/{case_id}").json()["evidence"][0]["sha256"]
    pages = ["/console/login", "/console", f"/console/cases/{case_id}", "/console/cameras"]
    pages += ["/console/suppressions", "/console/stats", f"/console/evidence/{sha}"]
    for path in pages:
        r = browser.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    assert browser.get(f"/console/evidence/{sha}").headers["content-type"] == "image/jpeg"


def test_session_cookie_flags_and_the_key_never_in_urls_or_logs(sqlite_api: Api, caplog):
    key = sqlite_api.server.create_key("dispatch", name="reviewer")
    with caplog.at_level(logging.INFO):
        browser, response = sign_in(sqlite_api, key)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS:
    https = Request({"type": "http", "scheme": "https", "path": "/", "headers": [],
                     "server": ("x", 443), "query_string": b""})  # fmt: skip
    assert cookie_options(https)["secure"] is True
    assert key not in response.headers.get("location", "")
    assert key not in caplog.text and key[-20:] not in caplog.text
    assert key not in browser.get("/console").text


def test_every_state_change_needs_the_csrf_token_and_our_origin(sqlite_api: Api, photos):
    case, files = report(photos)
    case_id = post(sqlite_api.ingest, case, files).json()["case_id"]
    key = sqlite_api.server.create_key("dispatch", name="reviewer")
    browser, _ = sign_in(sqlite_api, key)
    token = csrf_of(browser.get("/console").text)
    url = f"/console/cases/{case_id}/accept"
    assert browser.post(url, data={}).status_code == 403
    assert browser.post(url, data={"csrf": "wrong"}).status_code == 403
    evil = {"Origin": "http://evil.example"}
    assert browser.post(url, data={"csrf": token}, headers=evil).status_code == 403
    assert browser.post("/console/logout", data={}).status_code == 403
    assert sqlite_api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "reported"
    assert browser.post(url, data={"csrf": token}).status_code == 303
    assert sqlite_api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "accepted"
    # Out of order: refused with a clear message, nothing changes.
    r = browser.post(
        f"/console/cases/{case_id}/close",
        data={"csrf": token},
        headers={"X-Requested-With": "fetch", "Accept-Language": "en"},
    )
    assert r.status_code == 409 and "已立案" in r.json()["message"]
    # A sign-in form posted from elsewhere (login CSRF) is refused too.
    stranger = httpx.Client(base_url=sqlite_api.url)
    assert stranger.post("/console/login", data={"key": key, "csrf": "x"}).status_code == 403


def test_scopes_are_the_apis(sqlite_api: Api, photos):
    case, files = report(photos)
    case_id = post(sqlite_api.ingest, case, files).json()["case_id"]
    ingest = sqlite_api.server.create_key("ingest", name="worker")
    _, refused = sign_in(sqlite_api, ingest)
    assert refused.status_code == 401 and "sw_session" not in refused.headers.get("set-cookie", "")
    admin = sqlite_api.server.create_key("admin", name="keys-only")
    browser, response = sign_in(sqlite_api, admin)
    assert response.status_code == 303  # an admin key may sign in...
    assert browser.get("/console").status_code == 403  # ...but reads no cases without dispatch
    assert browser.get(f"/console/cases/{case_id}").status_code == 403
    token = csrf_of(browser.get("/console/cameras").text)
    browser.post(f"/console/cases/{case_id}/accept", data={"csrf": token})
    assert sqlite_api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "reported"


def test_worker_text_is_escaped(sqlite_api: Api, photos):
    attack = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    case, files = report(photos, location={"address": attack, "grid": "<b>g</b>"})
    case_id = post(sqlite_api.ingest, case, files).json()["case_id"]
    browser, _ = sign_in(sqlite_api, sqlite_api.server.create_key("dispatch"))
    for path in ("/console?status=all", f"/console/cases/{case_id}"):
        html = browser.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>g</b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The sign-in page shows only its own messages, nothing taken from the URL.
    login = httpx.get(f"{sqlite_api.url}/console/login?error=Mail+your+key+to+x&status=500")
    assert login.status_code == 200 and "Mail your key" not in login.text


def test_sessions_end_at_logout_when_idle_and_when_the_key_is_revoked(sqlite_api: Api):
    key = sqlite_api.server.create_key("dispatch", name="reviewer")
    db = sqlite_api.server.db
    browser, _ = sign_in(sqlite_api, key)
    token = csrf_of(browser.get("/console").text)
    assert browser.post("/console/logout", data={"csrf": token}).status_code == 303
    with db.read() as session:
        assert session.query(ConsoleSession).count() == 0
    assert browser.get("/console").headers["location"] == "/console/login"

    browser, _ = sign_in(sqlite_api, key)
    with db.write() as session:
        row = session.query(ConsoleSession).one()
        row.last_used_at -= timedelta(hours=2)  # idle longer than allowed
    assert browser.get("/console").status_code == 303
    browser, _ = sign_in(sqlite_api, key)
    with db.write() as session:
        row = session.query(ConsoleSession).one()
        row.expires_at = row.created_at  # past its lifetime
    assert browser.get("/console").status_code == 303

    browser, _ = sign_in(sqlite_api, key)
    key_id = key.split("_")[1]
    assert sqlite_api.admin.delete(f"/v1/keys/{key_id}").status_code in (200, 204)
    assert browser.get("/console").status_code == 303


# -- the feedback loop's API (SQLite and PostgreSQL) ---------------------------------------


def test_rejecting_as_fixture_creates_a_suppression_workers_fetch(api: Api, photos):
    case, files = report(photos, camera="north-1", bbox=[10, 20, 110, 220])
    case_id = post(api.ingest, case, files).json()["case_id"]
    bad = api.dispatch.post(
        f"/v1/cases/{case_id}/transitions",
        json={"to": "accepted", "actor": "r", "reason": "fixture"},
    )
    assert bad.status_code == 422
    r = api.dispatch.post(
        f"/v1/cases/{case_id}/transitions",
        json={"to": "rejected", "actor": "r", "reason": "fixture", "note": "a bin",
              "suppress": {"schedule": {"windows": [{"days": [1, 2, 3, 4, 5],
                                                     "start": "06:00", "end": "09:00"}]}}},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    history = api.dispatch.get(f"/v1/cases/{case_id}").json()["history"]
    assert history[-1]["data"]["reason"] == "fixture"
    (rule,) = api.ingest.get("/v1/suppressions").json()["items"]
    assert (rule["camera_id"], rule["zone_id"], rule["type"]) == ("north-1", "sidewalk-a",
                                                                  "street_stall")  # fmt: skip
    assert rule["bbox"] == [10, 20, 110, 220] and rule["case_id"] == case_id
    assert rule["schedule"]["windows"][0]["start"] == "06:00"
    # A false detection suppresses nothing.
    other, files = report(photos, camera="north-2")
    other_id = post(api.ingest, other, files).json()["case_id"]
    api.dispatch.post(
        f"/v1/cases/{other_id}/transitions",
        json={"to": "rejected", "actor": "r", "reason": "false_detection"},
    ).raise_for_status()
    assert len(api.dispatch.get("/v1/suppressions").json()["items"]) == 1

    # Bound keys see their cameras' only; ingest keys cannot change them.
    bound = api.server.create_key("ingest", cameras=["south-*"])
    south = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {bound}"})
    assert south.get("/v1/suppressions").json()["items"] == []
    made = {"camera_id": "south-1", "type": "garbage", "bbox": [0, 0, 50, 50], "actor": "r"}
    assert api.ingest.post("/v1/suppressions", json=made).status_code == 403
    created = api.dispatch.post("/v1/suppressions", json=made)
    assert created.status_code == 201
    sid = created.json()["id"]
    assert [s["id"] for s in south.get("/v1/suppressions").json()["items"]] == [sid]
    patched = api.dispatch.patch(f"/v1/suppressions/{sid}", json={"active": False})
    assert patched.json()["active"] is False
    assert (
        api.dispatch.post("/v1/suppressions", json={**made, "bbox": [50, 50, 0, 0]}).status_code
        == 422
    )
    assert api.dispatch.delete(f"/v1/suppressions/{sid}").status_code == 204
    assert api.dispatch.delete(f"/v1/suppressions/{sid}").status_code == 404


def test_camera_health_ingest(api: Api):
    image = cv2.imencode(".jpg", np.full((90, 160, 3), 128, np.uint8))[1].tobytes()
    health = '{"state": "dead", "detail": "no answer", "last_frame_at": null}'
    r = api.ingest.post(
        "/v1/cameras/cam-9/health",
        files=[("health", (None, health, "application/json")),
               ("thumbnail", ("t.jpg", image, "image/jpeg"))],
    )  # fmt: skip
    assert r.status_code == 204, r.text
    (cam,) = api.dispatch.get("/v1/cameras").json()["items"]
    assert cam["camera_id"] == "cam-9" and cam["state"] == "dead" and cam["detail"] == "no answer"
    thumb = api.dispatch.get(cam["thumbnail_url"])
    assert thumb.content == image and thumb.headers["x-content-type-options"] == "nosniff"
    assert api.ingest.get("/v1/cameras").status_code == 403
    bound = api.server.create_key("ingest", cameras=["cam-1"])
    other = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {bound}"})
    assert (
        other.post(
            "/v1/cameras/cam-9/health", files=[("health", (None, health, "application/json"))]
        ).status_code
        == 403
    )
    assert api.ingest.post(
        "/v1/cameras/cam-9/health",
        files=[("health", (None, health, "application/json")),
               ("thumbnail", ("t.jpg", b"<html>", "image/jpeg"))],
    ).status_code == 422  # fmt: skip
    with api.server.db.write() as session:  # the worker went quiet ten minutes ago
        session.get(CameraHealth, "cam-9").reported_at -= timedelta(minutes=10)
    assert api.dispatch.get("/v1/cameras").json()["items"][0]["state"] == "silent"
    bad = '{"state": "exploded"}'
    assert (
        api.ingest.post(
            "/v1/cameras/cam-9/health", files=[("health", (None, bad, "application/json"))]
        ).status_code
        == 422
    )


@pytest.mark.parametrize("lang,word", [("zh-CN", "待审队列"), ("en", "Queue")])
def test_language_switch(sqlite_api: Api, lang, word):
    browser, _ = sign_in(sqlite_api, sqlite_api.server.create_key("dispatch"))
    token = csrf_of(browser.get("/console").text)
    r = browser.post("/console/lang", data={"csrf": token, "lang": lang, "next": "//evil.example"})
    assert r.headers["location"] == "/console"  # never an open redirect
    assert word in browser.get("/console").text
