"""The faults a security review found, each refused as it should be, on both databases:
a 4xx problem (never a 500), nothing stored."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from api.server.settings import Settings
from api.server.tables import Webhook
from api.server.webhooks import verify
from tests.api.conftest import make_api
from tests.api.helpers import FAR, Api, all_changes, count_cases, is_problem, patch, post, report
from tests.support.testcam import wait_until

# -- evidence: decompression bombs and polyglots ---------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes | None = None, trailing: bytes = b"") -> bytes:
    """A 1-bit greyscale PNG; by default its IDAT really holds width x height zero pixels."""
    if idat is None:
        row = b"\0" * ((width + 7) // 8 + 1)
        idat = zlib.compress(row * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
        + trailing
    )


def jpeg_declaring(photo: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header is rewritten to declare width x height."""
    at = photo.index(b"\xff\xc0")
    return photo[: at + 5] + struct.pack(">HH", height, width) + photo[at + 9 :]


def with_evidence(photos: list[bytes], blobs: list[bytes]) -> tuple[Any, list[tuple[str, bytes]]]:
    case, files = report(photos, n_evidence=len(blobs))
    refs = [
        r.model_copy(update={"sha256": hashlib.sha256(b).hexdigest()})
        for r, b in zip(case.evidence, blobs, strict=True)
    ]
    files = [(name, blob) for (name, _), blob in zip(files, blobs, strict=True)]
    return case.model_copy(update={"evidence": refs}), files


def nothing_stored(api: Api) -> None:
    assert count_cases(api.dispatch) == 0
    assert api.evidence_files == []
    assert all_changes(api.dispatch) == []


def test_decompression_bombs_are_refused_from_their_header(api: Api, photos: list[bytes]) -> None:
    bombs = {
        "jpeg 50000x50000": jpeg_declaring(photos[0], 50000, 50000),
        "png 20000x20000": png(20000, 20000),  # ~48 KB, 400 MB once decoded
        "png past OpenCV's limit": png(60000, 60000, idat=zlib.compress(b"\0" * 1000)),
    }
    assert len(bombs["png 20000x20000"]) < 100_000
    for what, blob in bombs.items():
        case, files = with_evidence(photos, [blob])
        started = time.monotonic()
        body = is_problem(post(api.ingest, case, files), 422)
        assert body["type"].endswith("image-too-large"), (what, body)
        assert "pixels" in body["detail"]
        assert time.monotonic() - started < 2, what
    # A request full of them is refused as fast: nothing is decoded.
    case, files = with_evidence(photos, [bombs["png 20000x20000"]] * 20)
    for i, (name, _) in enumerate(files):  # distinct names, same bytes
        files[i] = (name, bombs["png 20000x20000"])
    started = time.monotonic()
    is_problem(post(api.ingest, case, files), 422)
    assert time.monotonic() - started < 3
    nothing_stored(api)


def test_the_pixel_limit_is_a_setting(sqlite_settings: Settings, photos: list[bytes]) -> None:
    small = sqlite_settings.model_copy(update={"max_image_pixels": 500 * 500})
    for api in make_api(small):
        case, files = report(photos, n_evidence=1)  # the photos are larger than 500x500
        body = is_problem(post(api.ingest, case, files), 422)
        assert "over the limit of 250000" in body["detail"]
        nothing_stored(api)


def test_images_built_to_be_costly_are_refused(sqlite_api: Api, photos: list[bytes]) -> None:
    """Thousands of scans (each a pass over the image when decoding) or of tiny chunks."""
    at = photos[0].index(b"\xff\xda")
    (length,) = struct.unpack_from(">H", photos[0], at + 2)
    scan = photos[0][at : at + 2 + length] + b"\x00" * 16  # a scan header, a little data
    many_scans = photos[0][:at] + scan * 100 + b"\xff\xd9"
    many_chunks = png(8, 8)
    iend = many_chunks.index(b"IEND") - 4
    many_chunks = many_chunks[:iend] + _chunk(b"tEXt", b"") * 60_000 + many_chunks[iend:]
    for blob in (many_scans, many_chunks):
        case, files = with_evidence(photos, [blob])
        body = is_problem(post(sqlite_api.ingest, case, files), 422)
        assert "more than" in body["detail"]
    nothing_stored(sqlite_api)


def test_images_with_data_after_their_end_are_refused(api: Api, photos: list[bytes]) -> None:
    html = b"<html><script>alert(document.domain)</script></html>"
    for blob in (photos[0] + html, png(64, 64, trailing=html), photos[0][:-200]):
        case, files = with_evidence(photos, [blob])
        body = is_problem(post(api.ingest, case, files), 422)
        assert body["type"].endswith("invalid-evidence")
    good_png = png(64, 64)
    bad_crc = good_png[:-5] + bytes([good_png[-5] ^ 1]) + good_png[-4:]
    case, files = with_evidence(photos, [bad_crc])
    is_problem(post(api.ingest, case, files), 422)
    nothing_stored(api)


def test_evidence_is_served_as_an_image_only(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, n_evidence=1)
    post(api.ingest, case, files).raise_for_status()
    r = api.dispatch.get(f"/v1/evidence/{case.evidence[0].sha256}")
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "sandbox" in r.headers["content-security-policy"]
    disposition = r.headers["content-disposition"]
    assert disposition == f'inline; filename="{case.evidence[0].sha256}.jpg"'


# -- webhooks: SSRF ------------------------------------------------------------------------------

PRIVATE_TARGETS = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.7/hook",
    "http://192.168.1.10/hook",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fd00::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://LOCALHOST./hook",
    "http://127.000.000.001/",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://127.1/hook",
    "http://0177.0.0.1/",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/",
    "http://user:pw@93.184.215.14/hook",
    "http://93.184.215.14@127.0.0.1/hook",
    "ftp://93.184.215.14/hook",
    "http://93.184.215.14:0/hook",
    "file:///etc/passwd",
]


@pytest.fixture
def strict_api(sqlite_settings: Settings) -> Iterator[Api]:
    """The defaults: no network allowed beyond public addresses (checked before any
    database work, so SQLite only)."""
    yield from make_api(sqlite_settings.model_copy(update={"webhook_allow_networks": []}))


def test_private_webhook_targets_are_refused_at_registration(strict_api: Api) -> None:
    for url in PRIVATE_TARGETS:
        r = strict_api.admin.post("/v1/webhooks", json={"url": url})
        assert r.status_code == 422, (url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert strict_api.admin.get("/v1/webhooks").json() == []
    # A public address is fine (registering sends nothing; no change follows to deliver).
    ok = strict_api.admin.post("/v1/webhooks", json={"url": "https://93.184.215.14:8443/h"})
    assert ok.status_code == 201, ok.text
    strict_api.admin.delete(f"/v1/webhooks/{ok.json()['id']}").raise_for_status()


class Receiver:
    def __init__(self, status: int = 204, body: bytes = b"") -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, data))
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _deliveries(api: Api, hook_id: str) -> list[dict[str, Any]]:
    return api.admin.get(f"/v1/webhooks/{hook_id}/deliveries").json()


def test_delivery_checks_the_resolved_address_again(
    settings: Settings, photos: list[bytes]
) -> None:
    """A target allowed when registered is refused at delivery once it no longer is: the
    name is resolved (here `localhost`) and checked before any connection is made."""
    receiver = Receiver()
    try:
        loose = settings.model_copy(update={"webhook_allow_networks": ["127.0.0.0/8", "::1"]})
        for api in make_api(loose):
            hook = api.admin.post(
                "/v1/webhooks", json={"url": f"http://localhost:{receiver.port}/hook"}
            )
            assert hook.status_code == 201, hook.text
            hook_id = hook.json()["id"]
        strict = settings.model_copy(update={"webhook_allow_networks": []})
        for api in make_api(strict):  # the same database, the allow-list gone
            case, files = report(photos)
            post(api.ingest, case, files).raise_for_status()
            wait_until(
                lambda api=api: [d["status"] for d in _deliveries(api, hook_id)] == ["failed"],
                10,
                "the delivery to fail",
                poll_s=0.05,
            )
            [delivery] = _deliveries(api, hook_id)
            assert delivery["attempts"] == 1 and delivery["last_status_code"] is None
            assert delivery["last_error"].startswith("refused")
        assert receiver.received == []
    finally:
        receiver.close()


def test_a_receivers_answer_is_never_echoed(api: Api, photos: list[bytes]) -> None:
    receiver = Receiver(status=500, body=b"root:x:0:0:root:/root:/bin/bash internal-only")
    try:
        hook = api.admin.post(
            "/v1/webhooks", json={"url": f"http://127.0.0.1:{receiver.port}/hook"}
        ).json()
        case, files = report(photos)
        post(api.ingest, case, files).raise_for_status()
        wait_until(lambda: receiver.received, 10, "a delivery", poll_s=0.05)
        wait_until(
            lambda: _deliveries(api, hook["id"])[0]["attempts"] >= 1, 10, "an attempt logged"
        )
        [delivery] = _deliveries(api, hook["id"])
        assert delivery["last_status_code"] == 500
        assert delivery["last_error"] == "HTTP 500"
        assert "root" not in json.dumps(_deliveries(api, hook["id"]))
    finally:
        receiver.close()


def test_webhook_secrets_are_not_stored_in_clear(api: Api, photos: list[bytes]) -> None:
    receiver = Receiver()
    try:
        r = api.admin.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{receiver.port}/h"})
        assert r.headers["cache-control"] == "no-store"
        secret = r.json()["secret"]
        with api.server.db.read() as session:
            stored = session.scalars(select(Webhook.secret)).one()
        assert secret not in stored and secret.removeprefix("whsec_") not in stored
        assert stored.startswith("enc1:")
        case, files = report(photos)
        post(api.ingest, case, files).raise_for_status()
        wait_until(lambda: receiver.received, 10, "a delivery", poll_s=0.05)
        headers, body = receiver.received[0]
        assert verify(secret, headers, body)  # still signed with the secret handed out
        assert headers["host"] == f"127.0.0.1:{receiver.port}"
    finally:
        receiver.close()


# -- authentication before work --------------------------------------------------------------


def _raw(url: str, request: bytes, wait_s: float = 5) -> bytes:
    """Send `request` as is and return what comes back within `wait_s`."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as s:
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = [
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ]
                    if length and len(rest) >= length[0]:
                        break
        except TimeoutError:
            pass
        return data


def test_no_body_is_read_before_the_key_is_checked(api: Api) -> None:
    """A 10 MB multipart body is announced but never sent: without a valid key (or
    without the scope) the answer comes at once, not after the body."""
    head = (
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 3000000\r\n"
        "Idempotency-Key: k\r\n\r\n--b\r\n"
    )
    dispatch_key = api.dispatch.headers["authorization"]
    cases = [
        ("POST", "/v1/cases", "", 401),
        ("POST", "/v1/cases", "Authorization: Bearer sw_bad_key\r\n", 401),
        ("POST", "/v1/cases", f"Authorization: {dispatch_key}\r\n", 403),
        ("PATCH", "/v1/cases/some-report", "", 401),
        ("POST", "/v1/keys", f"Authorization: {dispatch_key}\r\n", 403),
    ]
    for method, path, auth, status in cases:
        started = time.monotonic()
        answer = _raw(api.url, head.format(method=method, path=path, auth=auth).encode())
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), (path, answer[:200])
        assert b"application/problem+json" in answer
        assert time.monotonic() - started < 3


# -- keys bound to what they serve -----------------------------------------------------------


def test_ingest_keys_see_and_change_only_their_own_reports(api: Api, photos: list[bytes]) -> None:
    server = api.server
    a_key = server.create_key("ingest", name="worker-a", cameras=["cam-1", "cam-1b"])
    b_key = server.create_key("ingest", name="worker-b")
    with (
        httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {a_key}"}) as a,
        httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {b_key}"}) as b,
    ):
        case, files = report(photos, camera="cam-1", report_id="inc-shared")
        first = post(a, case, files, key="idem-1")
        assert first.status_code == 201
        case_id = first.json()["case_id"]
        before = api.dispatch.get(f"/v1/cases/{case_id}").json()

        # B cannot update, clear or even look at A's report or case.
        later = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        for target in ("inc-shared", case_id):
            is_problem(patch(b, target, {"cleared_at": later}), 404)
            is_problem(patch(b, target, {}), 404)
        # B replaying A's Idempotency-Key gets no receipt of A's: its report is its own.
        other, other_files = report(photos, camera="cam-2", at=FAR, photo_offset=4)
        replay = post(b, other, other_files, key="idem-1")
        assert replay.status_code == 201 and "idempotent-replayed" not in replay.headers
        assert replay.json()["case_id"] != case_id
        # B re-using A's report id opens its own report; A's case gets none of its images.
        reuse, reuse_files = report(
            photos, camera="cam-3", at=FAR, report_id="inc-shared", photo_offset=6
        )
        reused = post(b, reuse, reuse_files, key="idem-2")
        assert reused.status_code in (200, 201) and reused.json()["case_id"] != case_id
        after = api.dispatch.get(f"/v1/cases/{case_id}").json()
        assert after["evidence"] == before["evidence"]
        assert after["cleared_at"] is None and after["report_count"] == 1
        # A is bound to its cameras.
        elsewhere, files = report(photos, camera="cam-9")
        body = is_problem(post(a, elsewhere, files), 403)
        assert body["type"].endswith("camera-not-allowed")
        # A can still update its own report; the dispatcher sees that by report id.
        assert patch(a, "inc-shared", {"cleared_at": later}).status_code == 200
        ambiguous = api.dispatch.get("/v1/cases/inc-shared")
        is_problem(ambiguous, 409)  # two keys sent that id: the case id is needed


def test_a_rotated_key_continues_its_predecessors_reports(api: Api, photos: list[bytes]) -> None:
    old = api.admin.post("/v1/keys", json={"name": "w1", "scopes": ["ingest"]}).json()
    new = api.admin.post(
        "/v1/keys", json={"name": "w1-new", "scopes": ["ingest"], "namespace_of": old["id"]}
    )
    assert new.status_code == 201 and new.json()["namespace"] == old["namespace"]
    case, files = report(photos)
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {old['key']}"}) as c:
        post(c, case, files).raise_for_status()
    headers = {"Authorization": f"Bearer {new.json()['key']}"}
    with httpx.Client(base_url=api.url, headers=headers) as c:
        later = (case.last_seen + timedelta(minutes=1)).isoformat()
        assert patch(c, case.id, {"last_seen": later}).json()["changed"] is True


def test_open311_intake_has_its_own_scope(api: Api) -> None:
    form = {"service_code": "09009", "lat": "31.2", "long": "121.4"}
    r = api.ingest.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 403 and r.json()[0]["code"] == 403
    citizen = api.server.create_key("open311", name="citizen-app")
    r = httpx.post(f"{api.url}/open311/v2/requests.json", data={**form, "api_key": citizen})
    assert r.status_code == 201, r.text
    # That key can do nothing else.
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {citizen}"}) as c:
        case_id = r.json()[0]["service_request_id"]
        is_problem(patch(c, case_id, {}), 403)
        is_problem(c.get("/v1/cases"), 403)


# -- values that would break storage ---------------------------------------------------------


def _with(case: Any, **changes: Any) -> str:
    body = json.loads(case.model_dump_json())
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[last] = value
    return json.dumps(body)


def test_unstorable_and_inconsistent_reports_are_refused(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, n_evidence=1)
    raw = case.model_dump_json()
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    bad = {
        "NaN": raw.replace('"bbox":[100.0', '"bbox":[NaN'),
        "Infinity": raw.replace('"bbox":[100.0', '"bbox":[Infinity'),
        "1e400": raw.replace('"bbox":[100.0', '"bbox":[1e400'),
        "confidence NaN": raw.replace('"confidence":0.87', '"confidence":NaN'),
        "long class": _with(case, class_name="x" * 65),
        "long camera": _with(case, camera_id="c" * 129),
        "long address": _with(case, location__address="a" * 1001),
        "NUL": _with(case, camera_id="cam\u00001"),
        "NUL in zone": _with(case, zone_id="\u0000"),
        "control": _with(case, class_name="stall\u001b[2J"),
        "lone surrogate": raw.replace('"class_name":"stall"', '"class_name":"\\ud800"'),
        "year 9999": _with(case, last_seen="9999-12-31T23:59:59-14:00"),
        "year 9999 utc": _with(case, last_seen="9999-12-31T23:59:59+00:00"),
        "year 1": _with(case, first_seen="0001-01-01T00:00:00+00:00"),
        "future": _with(case, last_seen=future),
        "future evidence": _with(case, evidence__0__captured_at=future),
        "x2 < x1": _with(case, bbox=[300.0, 200.0, 100.0, 400.0]),
        "empty box": _with(case, bbox=[100.0, 200.0, 100.0, 200.0]),
        "order": _with(case, confirmed_at="2025-05-01T00:00:00+00:00"),
        "cleared first": _with(case, cleared_at="2025-05-01T00:00:00+00:00"),
        "huge pixel": _with(case, bbox=[0, 0, 1e12, 1e12]),
    }
    for what, payload in bad.items():
        r = post(api.ingest, payload, files, key=f"k-{what}")
        assert r.status_code in (400, 422), (what, r.status_code, r.text)
        is_problem(r, r.status_code)
    nothing_stored(api)


def test_unstorable_query_and_path_values_are_400(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, n_evidence=1)
    post(api.ingest, case, files).raise_for_status()
    d = api.dispatch
    for cursor in ("²", "٣", "99999999999999999999", "-1", "1e3", " 1"):
        is_problem(d.get("/v1/changes", params={"cursor": cursor}), 400)
    import base64

    for inner in ("case:²", "case:99999999999999999999", "case:-5", "nope:1"):
        cursor = base64.urlsafe_b64encode(inner.encode()).decode()
        is_problem(d.get("/v1/cases", params={"cursor": cursor}), 400)
    for params in (
        {"camera": "cam\x001"},
        {"since": "9999-12-31T23:59:59-14:00"},
        {"until": "2025-01-01T00:00:00"},
        {"bbox": "nan,nan,nan,nan"},
        {"bbox": "-inf,-90,inf,90"},
    ):
        r = d.get("/v1/cases", params=params)
        assert r.status_code in (400, 422), (params, r.text)
        is_problem(r, r.status_code)
    is_problem(d.get("/v1/cases/a%00b"), 400)
    is_problem(d.get("/v1/cases/" + "x" * 300), 422)
    r = d.get("/open311/v2/requests.json", params={"start_date": "2025-01-01T00:00:00"})
    assert r.status_code == 400 and "offset" in r.json()[0]["description"]
    assert count_cases(d) == 1


def test_unstorable_bodies_elsewhere_are_refused(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, n_evidence=1)
    case_id = post(api.ingest, case, files).json()["case_id"]
    before = api.dispatch.get(f"/v1/cases/{case_id}").json()
    transitions = f"/v1/cases/{case_id}/transitions"
    for body in (
        {"to": "accepted", "actor": "li\u0000"},
        {"to": "accepted", "actor": "li", "note": "n\u0000"},
        {"to": "accepted", "actor": "x" * 201},
    ):
        is_problem(api.dispatch.post(transitions, json=body), 422)
    for obs in (
        {"last_seen": "9999-12-31T23:59:59-14:00"},
        {"last_seen": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        {"cleared_at": "1970-01-01T00:00:00+00:00"},
    ):
        is_problem(patch(api.ingest, case.id, obs), 422)
    assert api.dispatch.get(f"/v1/cases/{case_id}").json() == before
    is_problem(api.admin.post("/v1/keys", json={"name": "a\u0000", "scopes": ["ingest"]}), 422)
    is_problem(api.admin.post("/v1/webhooks", json={"url": "http://x\u0000.test/"}), 422)
    is_problem(
        api.admin.post("/v1/webhooks", json={"url": "https://example.com/" + "a" * 3000}), 422
    )
    form = {"service_code": "09009", "lat": "1", "long": "2", "description": "a\x00b"}
    citizen = api.server.create_key("open311")
    r = httpx.post(f"{api.url}/open311/v2/requests.json", data={**form, "api_key": citizen})
    assert r.status_code == 400, r.text
    assert count_cases(api.dispatch) == 1


# -- hygiene ---------------------------------------------------------------------------------


def test_api_keys_never_reach_the_access_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    key = api.dispatch.headers["authorization"].removeprefix("Bearer ")
    with caplog.at_level(logging.INFO, logger="streetwatch.access"):
        r = httpx.get(f"{api.url}/open311/v2/requests.json", params={"api_key": key})
        assert r.status_code == 200
        wait_until(lambda: caplog.records, 5, "an access log line", poll_s=0.02)
    lines = [rec.getMessage() for rec in caplog.records]
    assert any("api_key=REDACTED" in line for line in lines), lines
    assert not any(key in line for line in lines)


def test_made_up_methods_create_no_metrics_series(sqlite_api: Api) -> None:
    for method in ("FOOBAR", "XYZZY1", "PROPFIND"):
        httpx.request(method, f"{sqlite_api.url}/v1/cases")
    metrics = httpx.get(f"{sqlite_api.url}/metrics").text
    assert "FOOBAR" not in metrics and "XYZZY1" not in metrics and "PROPFIND" not in metrics
    assert 'method="other"' in metrics


def test_process_and_build_metrics(sqlite_api: Api) -> None:
    metrics = httpx.get(f"{sqlite_api.url}/metrics").text
    assert "process_resident_memory_bytes" in metrics
    assert "streetwatch_build_info{" in metrics and 'version="' in metrics


def test_slow_clients_are_cut_off(sqlite_settings: Settings) -> None:
    quick = sqlite_settings.model_copy(
        update={"header_timeout_s": 1.0, "body_idle_timeout_s": 1.0, "body_timeout_s": 3.0}
    )
    for api in make_api(quick):
        host, port = api.url.removeprefix("http://").split(":")
        # Headers dripping in: the connection is closed.
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert s.recv(100) == b""
            assert time.monotonic() - started < 5
        # A body that stalls: 408, problem+json.
        key = api.ingest.headers["authorization"]
        head = (
            f"POST /v1/cases HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n"
            "Idempotency-Key: slow\r\n\r\n--b\r\n"
        ).encode()
        started = time.monotonic()
        answer = _raw(api.url, head, wait_s=10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"body-timeout" in answer
        assert time.monotonic() - started < 6
        assert count_cases(api.dispatch) == 0


def test_key_responses_are_not_cacheable(sqlite_api: Api) -> None:
    r = sqlite_api.admin.post("/v1/keys", json={"name": "x", "scopes": ["dispatch"]})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    assert sqlite_api.admin.get("/v1/keys").headers["cache-control"] == "no-store"


def test_request_ids_in_problems_and_headers(sqlite_api: Api) -> None:
    r = sqlite_api.dispatch.get("/v1/cases/nope", headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    assert is_problem(r, 404)["request_id"] == "trace-42"
    r = sqlite_api.dispatch.get("/v1/cases/nope", headers={"X-Request-ID": "bad id\x7f"})
    assert r.headers["x-request-id"] != "bad id" and is_problem(r, 404)["request_id"]


def test_files_are_private(api: Api, photos: list[bytes], db_url: str) -> None:
    case, files = report(photos, n_evidence=1)
    post(api.ingest, case, files).raise_for_status()
    data_dir = api.server.settings.data_dir
    assert data_dir.stat().st_mode & 0o077 == 0
    assert (data_dir / "secret.key").stat().st_mode & 0o077 == 0
    for f in api.evidence_files:
        assert f.stat().st_mode & 0o077 == 0, f
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        from pathlib import Path

        for p in Path(path).parent.glob("streetwatch.db*"):
            assert p.stat().st_mode & 0o077 == 0, p


def test_a_failed_request_removes_its_files_while_it_holds_the_lock(
    api: Api, photos: list[bytes]
) -> None:
    """The second image fails to store (a full disk, say): the first, written by this
    request, is removed before the transaction ends, so no request that waited for the
    lock can have linked it."""
    ctx = api.server.app.state.ctx
    store = ctx.store
    real_put, real_remove = store.put, store.remove
    lock_free_at_removal: list[bool] = []
    puts = 0

    def failing_put(sha256: str, data: bytes) -> bool:
        nonlocal puts
        puts += 1
        if puts == 2:
            raise OSError(28, "No space left on device")
        return real_put(sha256, data)

    def watching_remove(sha256: str) -> None:
        lock_free_at_removal.append(_write_lock_is_free(api))
        real_remove(sha256)

    store.put, store.remove = failing_put, watching_remove
    try:
        case, files = report(photos, n_evidence=2)
        r = post(api.ingest, case, files)
        assert r.status_code >= 500
    finally:
        store.put, store.remove = real_put, real_remove
    assert lock_free_at_removal == [False]
    assert api.evidence_files == [] and count_cases(api.dispatch) == 0


def _write_lock_is_free(api: Api) -> bool:
    """From another connection: could a writer take the write lock right now?"""
    db = api.server.db
    if db.is_sqlite:
        import sqlite3

        path = db.url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
    from api.server.db import _PG_WRITE_LOCK

    with db.engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_WRITE_LOCK}).scalar()
        if got:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_WRITE_LOCK})
        conn.commit()
        return bool(got)


def test_a_keyless_open311_form_is_read_only_while_small(sqlite_api: Api) -> None:
    """Open311 clients may put api_key in the form, so a form without a key in the header
    or query is read, but only up to a small size."""
    big = {"service_code": "09009", "lat": "1", "long": "2", "description": "x" * 200_000}
    r = httpx.post(f"{sqlite_api.url}/open311/v2/requests.json", data=big)
    assert r.status_code == 413 and r.json()[0]["code"] == 413
    assert count_cases(sqlite_api.dispatch) == 0


# -- site boxes on the frame ----------------------------------------------------------------


def test_site_boxes_must_lie_on_the_frame(api: Api, photos: list[bytes]) -> None:
    """Issue 28: `[-5000, -5000, -10, -10]` was stored as a case's and as a suppression's box.
    A site box must lie on the camera's frame: the largest evidence image the report attaches,
    else the largest the API holds from that camera, else at least not left of or above it."""
    import cv2
    import numpy as np

    sizes = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR).shape for p in photos[:2]]
    w, h = max(s[1] for s in sizes), max(s[0] for s in sizes)
    for bbox in ([-5000, -5000, -10, -10], [10, 10, w + 50, 100], [10, 10, 100, h + 3]):
        case, files = report(photos, bbox=bbox)
        body = is_problem(post(api.ingest, case, files), 422)
        assert [e["loc"] for e in body["errors"]] == [["case", "bbox"]], body
        assert "case.bbox" in body["detail"]
    assert f"{w}x{h}" in body["detail"]
    # A pixel of rounding at the edges is no fault.
    case, files = report(photos, bbox=[-0.5, 0, w + 0.5, h + 1])
    assert post(api.ingest, case, files).status_code == 201
    # Without evidence: the frame of the camera's stored images.
    case, _ = report(photos, n_evidence=0, bbox=[0, 0, w + 50, 10])
    body = is_problem(post(api.ingest, case, []), 422)
    assert body["errors"][0]["loc"] == ["case", "bbox"] and f"{w}x{h}" in body["detail"]
    # A camera the API holds no image of: only the edges it must start on.
    case, _ = report(photos, camera="cam-unseen", n_evidence=0, bbox=[-50, 0, 10, 10])
    is_problem(post(api.ingest, case, []), 422)
    case, _ = report(photos, camera="cam-unseen", n_evidence=0, bbox=[0, 0, 5000, 5000])
    assert post(api.ingest, case, []).status_code == 201
    assert count_cases(api.dispatch) == 2

    made = {"camera_id": "cam-1", "type": "garbage", "actor": "reviewer"}
    for bbox in ([-5000, -5000, -10, -10], [10, 10, w + 50, 100], [50, 50, 0, 0]):
        r = api.dispatch.post("/v1/suppressions", json={**made, "bbox": bbox})
        body = is_problem(r, 422)
        assert [e["loc"] for e in body["errors"]] == [["body", "bbox"]] * len(body["errors"])
        assert "body.bbox" in body["detail"]
        assert "validation error" not in r.text and "pydantic" not in r.text  # our words only
    assert api.dispatch.get("/v1/suppressions").json()["items"] == []
    ok = api.dispatch.post("/v1/suppressions", json={**made, "bbox": [0, 0, w, h]})
    assert ok.status_code == 201, ok.text
