"""Webhooks: signed per Standard Webhooks, retried with backoff, logged."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from api.webhooks import verify
from streams.testcam import wait_until
from tests.api.helpers import Api, post, report


class Receiver:
    """A local HTTP endpoint that fails its first `fail_first` requests with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(receiver.received) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout: float = 15) -> None:
        wait_until(lambda: len(self.received) >= n, timeout, f"{n} requests", poll_s=0.05)


def last_delivery(api: Api, hook_id: str, status: str, timeout: float) -> dict[str, Any]:
    """The endpoint's newest delivery-log entry, once it has reached `status`."""

    def reached() -> dict[str, Any] | None:
        entry = api.admin.get(f"/v1/webhooks/{hook_id}/deliveries").json()[0]
        return entry if entry["status"] == status else None

    return wait_until(reached, timeout, f"a {status} delivery", poll_s=0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()


def test_events_are_signed_and_delivered(api: Api, photos: list[bytes], receiver: Receiver) -> None:
    r = api.admin.post("/v1/webhooks", json={"url": receiver.url})
    assert r.status_code == 201, r.text
    hook = r.json()
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in api.admin.get("/v1/webhooks").json()[0]

    case, files = report(photos)
    case_id = post(api.ingest, case, files).json()["case_id"]
    api.dispatch.post(
        f"/v1/cases/{case_id}/transitions", json={"to": "accepted", "actor": "li"}
    ).raise_for_status()
    receiver.wait_for(2)
    import json

    types = []
    for headers, body in receiver.received:
        assert verify(secret, headers, body)
        assert not verify(secret, headers, body + b" ")
        payload = json.loads(body)
        assert headers["webhook-id"] == f"msg_{payload['data']['seq']}"
        assert payload["data"]["case_id"] == case_id
        types.append(payload["type"])
    assert types == ["case.created", "case.transitioned"]
    # The receiver records a request before it answers; the log says delivered after that.
    wait_until(
        lambda: (
            [d["status"] for d in api.admin.get(f"/v1/webhooks/{hook['id']}/deliveries").json()]
            == ["delivered", "delivered"]
        ),
        5,
        "both deliveries logged as delivered",
        poll_s=0.05,
    )


def test_failed_deliveries_are_retried_with_backoff(
    api: Api, photos: list[bytes], receiver: Receiver
) -> None:
    receiver.fail_first = 2
    hook = api.admin.post(
        "/v1/webhooks", json={"url": receiver.url, "event_types": ["case.created"]}
    ).json()
    case, files = report(photos)
    post(api.ingest, case, files).raise_for_status()
    receiver.wait_for(3)
    ids = {h["webhook-id"] for h, _ in receiver.received}
    assert len(ids) == 1  # the same message each time, so the receiver can deduplicate
    delivery = last_delivery(api, hook["id"], "delivered", 10)
    assert delivery["attempts"] == 3 and delivery["last_status_code"] == 204


def test_unreachable_endpoint_fails_after_the_last_retry(api: Api, photos: list[bytes]) -> None:
    hook = api.admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/nothing"}).json()
    case, files = report(photos)
    post(api.ingest, case, files).raise_for_status()
    delivery = last_delivery(api, hook["id"], "failed", 15)
    assert delivery["attempts"] == 3 and delivery["last_error"]  # 1 + two retries (test backoff)


def test_webhook_validation(api: Api) -> None:
    assert api.admin.post("/v1/webhooks", json={"url": "not a url"}).status_code == 422
    r = api.admin.post("/v1/webhooks", json={"url": "http://x.test/", "event_types": ["nope"]})
    assert r.status_code == 422
