"""The console's security and the feedback loop's API, over real HTTP (no browser here: the
browser test is tests/console/test_console_browser.py)."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import timedelta

import cv2
import httpx
import numpy as np
import pytest
from starlette.requests import Request

from api.server.console.sessions import cookie_options
from api.server.settings import Settings
from api.server.tables import CameraHealth, ConsoleSession
from tests.api.conftest import make_api
from tests.api.helpers import Api, post, report, write_lock_held


def sign_in(api: Api, key: str) -> tuple[httpx.Client, httpx.Response]:
    browser, token = sign_in_form(api)
    response = browser.post("/console/login", data={"key": key, "csrf": token})
    return browser, response


def sign_in_form(api: Api) -> tuple[httpx.Client, str]:
    """A browser with the sign-in page loaded: its cookie and the form's CSRF token."""
    browser = httpx.Client(base_url=api.url, timeout=30)
    page = browser.get("/console/login")
    return browser, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


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
    """Every console page reads cases, which needs `dispatch`: a key without it is refused at
    sign-in, saying which scope it lacks (issue 28: an admin-only key used to get in to a
    console where every page was 403)."""
    case, files = report(photos)
    case_id = post(sqlite_api.ingest, case, files).json()["case_id"]
    for scopes, has in ((("ingest",), "ingest"), (("admin",), "admin")):
        key = sqlite_api.server.create_key(*scopes, name="no-dispatch")
        browser, refused = sign_in(sqlite_api, key)
        assert refused.status_code == 403
        assert "sw_session" not in refused.headers.get("set-cookie", "")
        assert "没有 dispatch（审核调度）权限" in refused.text
        assert f"它的权限：{has}" in refused.text
        assert browser.get("/console").headers["location"] == "/console/login"
        token = re.search(r'name="csrf" value="([^"]+)"', refused.text).group(1)
        browser.cookies.set("sw_lang", "en")
        english = browser.post("/console/login", data={"key": key, "csrf": token})
        assert "lacks the &#39;dispatch&#39; scope the console needs" in english.text
    browser, response = sign_in(sqlite_api, sqlite_api.server.create_key("admin", "dispatch"))
    assert response.status_code == 303
    assert browser.get(f"/console/cases/{case_id}").status_code == 200
    # An unknown key is told apart from a key without the scope.
    _, unknown = sign_in(sqlite_api, "sw_0_unknown")
    assert unknown.status_code == 401 and "密钥无效或已吊销" in unknown.text
    assert sqlite_api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "reported"


def test_sign_in_attempts_are_throttled_per_client_address(sqlite_settings: Settings):
    """Past `sign_in_attempts` an address gets 429 with Retry-After, before any key is looked
    at, even for a valid key; another address signs in as usual."""
    settings = sqlite_settings.model_copy(update={"sign_in_attempts": 3, "sign_in_window_s": 60})
    for api in make_api(settings):
        key = api.server.create_key("dispatch", name="reviewer")
        # An office behind one address: its good sign-ins give their attempts back.
        for _ in range(5):
            office, token = sign_in_form(api)
            assert (
                office.post("/console/login", data={"key": key, "csrf": token}).status_code == 303
            )
        guesser, token = sign_in_form(api)
        for i in range(3):
            wrong = guesser.post("/console/login", data={"key": f"sw_{i}_wrong", "csrf": token})
            assert wrong.status_code == 401
        for attempt in ("sw_3_wrong", key):
            refused = guesser.post("/console/login", data={"key": attempt, "csrf": token})
            assert refused.status_code == 429
            assert 15 <= int(refused.headers["retry-after"]) <= 20  # one attempt per 20 s
            assert "登录尝试过于频繁" in refused.text
            assert "sw_session" not in refused.headers.get("set-cookie", "")
        # Another address (loopback has them all) is not locked out.
        elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")
        other = httpx.Client(base_url=api.url, transport=elsewhere)
        page = other.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert other.post("/console/login", data={"key": key, "csrf": token}).status_code == 303
        assert other.get("/console").status_code == 200


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


# -- never the whole server held up by one request (SQLite and PostgreSQL) ----------------

HOLD_S = 6.0  # how long another connection holds the write lock
PROMPT_S = 1.5  # far below HOLD_S, generous for a loaded 2-core machine


def test_no_console_request_holds_up_the_server_while_a_writer_holds_the_lock(api: Api, photos):
    """A wrong-key sign-in, a sign-in, an accept and a sign-out, sent while another connection
    holds the database's write lock (a long intake, a prune): `/healthz` keeps answering at
    once, the wrong key is refused from a read without waiting for the lock, and the others
    are done once it is released. (Issue 28: the console's handlers did their database work
    on the event loop, so one wrong key stopped the whole process.)"""
    case, files = report(photos)
    case_id = post(api.ingest, case, files).json()["case_id"]
    key = api.server.create_key("dispatch", name="reviewer")
    reviewer, _ = sign_in(api, key)
    accept_token = csrf_of(reviewer.get("/console").text)
    leaving, _ = sign_in(api, key)
    logout_token = csrf_of(leaving.get("/console").text)
    guesser, guess_token = sign_in_form(api)
    newcomer, newcomer_token = sign_in_form(api)
    wrong = {"key": "sw_0_wrong", "csrf": guess_token}
    right = {"key": key, "csrf": newcomer_token}
    accept = f"/console/cases/{case_id}/accept"
    sends = {
        "wrong key": lambda: guesser.post("/console/login", data=wrong),
        "sign-in": lambda: newcomer.post("/console/login", data=right),
        "accept": lambda: reviewer.post(accept, data={"csrf": accept_token}),
        "sign-out": lambda: leaving.post("/console/logout", data={"csrf": logout_token}),
    }
    answers: dict[str, int] = {}
    threads = [
        threading.Thread(target=lambda n=n, f=f: answers.update({n: f().status_code}), daemon=True)
        for n, f in sends.items()
    ]
    probes: list[float] = []
    with write_lock_held(api, HOLD_S):
        held_at = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(0.5)  # the requests have reached the server and wait for the lock
        while time.monotonic() - held_at < HOLD_S - PROMPT_S:
            start = time.monotonic()
            httpx.get(f"{api.url}/healthz", timeout=HOLD_S + 30).raise_for_status()
            probes.append(time.monotonic() - start)
            time.sleep(0.2)
        answered_while_held = dict(answers)
    for t in threads:
        t.join(30)
    assert max(probes) < PROMPT_S, f"/healthz took {max(probes):.2f} s with the lock held"
    assert answered_while_held == {"wrong key": 401}
    assert answers == {"wrong key": 401, "sign-in": 303, "accept": 303, "sign-out": 303}
    assert api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "accepted"


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
