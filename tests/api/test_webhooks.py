"""Webhooks as Standard Webhooks recommends: signed (checked with the official
`standardwebhooks` verifier), retried on a multi-day schedule with jitter, 410 and
Retry-After honoured, failing endpoints disabled with an event, replay, no attempts to a
deleted endpoint, endpoints served concurrently, never one delivery sent twice at once."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from api.server.settings import Settings
from tests.api.conftest import make_api
from tests.api.helpers import Api, all_changes, post, report
from tests.support.api import run_server
from tests.support.testcam import wait_until

served = contextmanager(make_api)

# (status, extra headers, seconds to take) for the n-th request (1-based)
Behaviour = Callable[[int], tuple[int, dict[str, str], float]]


class Receiver:
    """A loopback endpoint that answers each request as `behaviour` says."""

    def __init__(self, behaviour: Behaviour | None = None, drip: bool = False) -> None:
        self.received: list[tuple[float, dict[str, str], bytes]] = []
        self.behaviour: Behaviour = behaviour or (lambda n: (204, {}, 0.0))
        self.in_flight: Counter[str] = Counter()
        self.max_overlap = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                msg = headers.get("webhook-id", "")
                with receiver.lock:
                    receiver.received.append((time.monotonic(), headers, body))
                    n = len(receiver.received)
                    receiver.in_flight[msg] += 1
                    receiver.max_overlap = max(receiver.max_overlap, receiver.in_flight[msg])
                status, extra, take_s = receiver.behaviour(n)
                try:
                    if drip:  # the answer's headers trickle in, never idle for long
                        self.wfile.write(f"HTTP/1.1 {status} X\r\n".encode())
                        deadline = time.monotonic() + take_s
                        while time.monotonic() < deadline and not self._gone():
                            self.wfile.write(b"x-slow: 1\r\n")
                            self.wfile.flush()
                            time.sleep(0.02)
                        self.wfile.write(b"content-length: 0\r\n\r\n")
                    else:
                        time.sleep(take_s)
                        self.send_response(status)
                        for k, v in extra.items():
                            self.send_header(k, v)
                        self.send_header("content-length", "0")
                        self.end_headers()
                except OSError:
                    pass  # the sender gave up
                finally:
                    with receiver.lock:
                        receiver.in_flight[msg] -= 1

            def _gone(self) -> bool:
                """The sender closed the connection (it gave up on the attempt)."""
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 15) -> None:
        wait_until(lambda: len(self.received) >= n, timeout, f"{n} requests", poll_s=0.05)

    def ids(self) -> list[str]:
        return [h["webhook-id"] for _, h, _ in self.received]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def deliveries(api: Api, hook_id: str) -> list[dict[str, Any]]:
    return api.admin.get(f"/v1/webhooks/{hook_id}/deliveries").raise_for_status().json()


def last_delivery(api: Api, hook_id: str, status: str, timeout: float) -> dict[str, Any]:
    """The endpoint's newest delivery-log entry, once it has reached `status`."""

    def reached() -> dict[str, Any] | None:
        entry = deliveries(api, hook_id)[0]
        return entry if entry["status"] == status else None

    return wait_until(reached, timeout, f"a {status} delivery", poll_s=0.05)


def subscribe(api: Api, url: str, **extra: Any) -> dict[str, Any]:
    r = api.admin.post("/v1/webhooks", json={"url": url, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def new_case(api: Api, photos: list[bytes], **kw: Any) -> str:
    case, files = report(photos, **kw)
    return post(api.ingest, case, files).raise_for_status().json()["case_id"]


def hook_state(api: Api, hook_id: str) -> dict[str, Any]:
    return next(h for h in api.admin.get("/v1/webhooks").json() if h["id"] == hook_id)


def test_events_verify_with_the_standard_webhooks_library(
    api: Api, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    hook = subscribe(api, receiver.url)
    assert hook["secret"].startswith("whsec_")
    assert "secret" not in api.admin.get("/v1/webhooks").json()[0]
    case_id = new_case(api, photos)
    api.dispatch.post(
        f"/v1/cases/{case_id}/transitions", json={"to": "accepted", "actor": "li"}
    ).raise_for_status()
    receiver.wait_for(2)
    verifier = StandardWebhook(hook["secret"])
    types = []
    for _, headers, body in receiver.received:
        payload = verifier.verify(body, headers)  # raises unless signed and recent
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body + b" ", headers)
        with pytest.raises(WebhookVerificationError):
            StandardWebhook("whsec_" + "A" * 43 + "=").verify(body, headers)
        assert headers["webhook-id"] == f"msg_{payload['data']['seq']}"
        assert payload["data"]["case_id"] == case_id
        types.append(payload["type"])
    assert types == ["case.created", "case.transitioned"]
    wait_until(
        lambda: [d["status"] for d in deliveries(api, hook["id"])] == ["delivered"] * 2,
        5,
        "both deliveries logged as delivered",
        poll_s=0.05,
    )


def test_failed_deliveries_are_retried_with_backoff(
    api: Api, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(lambda n: (500 if n <= 2 else 204, {}, 0.0))
    hook = subscribe(api, receiver.url, event_types=["case.created"])
    new_case(api, photos)
    receiver.wait_for(3)
    assert len(set(receiver.ids())) == 1  # the same message each time: receivers deduplicate
    delivery = last_delivery(api, hook["id"], "delivered", 10)
    assert delivery["attempts"] == 3 and delivery["last_status_code"] == 204
    assert hook_state(api, hook["id"])["failing_since"] is None  # a success clears it


def test_unreachable_endpoint_fails_after_the_last_retry(api: Api, photos: list[bytes]) -> None:
    hook = subscribe(api, "http://127.0.0.1:9/nothing")
    new_case(api, photos)
    delivery = last_delivery(api, hook["id"], "failed", 15)
    assert delivery["attempts"] == 3 and delivery["last_error"]  # 1 + two retries (test backoff)


def test_the_default_schedule_spans_three_days() -> None:
    schedule = Settings.model_fields["webhook_backoff_s"].default
    assert sum(schedule) >= 3 * 86400 and list(schedule) == sorted(schedule)
    assert Settings.model_fields["webhook_jitter"].default > 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_retries_are_jittered(
    settings: Settings, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(lambda n: (500, {}, 0.0))
    jittery = settings.model_copy(update={"webhook_backoff_s": (100.0,), "webhook_jitter": 0.5})
    with served(jittery) as api:
        hook = subscribe(api, receiver.url)
        for i in range(4):
            new_case(api, photos, camera=f"cam-{i}")
        receiver.wait_for(4)

        def delays() -> list[float] | None:
            ds = [d for d in deliveries(api, hook["id"]) if d["attempts"] == 1]
            if len(ds) < 4:
                return None
            return [
                (
                    datetime.fromisoformat(d["next_attempt_at"])
                    - datetime.fromisoformat(d["last_attempt_at"])
                ).total_seconds()
                for d in ds
            ]

        waits = wait_until(delays, 10, "four first attempts", poll_s=0.05)
        assert all(49 <= w <= 151 for w in waits), waits
        assert len({round(w, 3) for w in waits}) > 1  # not in lockstep


def test_410_disables_the_endpoint_with_an_event(
    api: Api, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    gone = receivers(lambda n: (410, {}, 0.0))
    watcher = receivers()
    hook = subscribe(api, gone.url)
    other = subscribe(api, watcher.url, event_types=["webhook.disabled"])
    new_case(api, photos)
    gone.wait_for(1)
    wait_until(lambda: not hook_state(api, hook["id"])["active"], 10, "the endpoint disabled")
    state = hook_state(api, hook["id"])
    assert "410" in state["disabled_reason"] and state["disabled_at"]
    event = next(c for c in all_changes(api.dispatch) if c["kind"] == "webhook_disabled")
    assert event["event_type"] == "webhook.disabled" and event["case_id"] is None
    assert event["data"]["webhook_id"] == hook["id"]
    watcher.wait_for(1)
    _, headers, body = watcher.received[0]
    payload = StandardWebhook(other["secret"]).verify(body, headers)
    assert payload["type"] == "webhook.disabled"
    assert payload["data"]["data"]["webhook_id"] == hook["id"]
    new_case(api, photos, camera="cam-9")
    time.sleep(1.0)
    assert len(gone.received) == 1  # nothing more for a disabled endpoint


def test_429_retry_after_is_honoured(
    api: Api, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(lambda n: (429, {"Retry-After": "2"}, 0.0) if n == 1 else (204, {}, 0.0))
    hook = subscribe(api, receiver.url)
    new_case(api, photos)
    receiver.wait_for(2, timeout=10)
    waited = receiver.received[1][0] - receiver.received[0][0]
    assert waited >= 1.9, waited  # the test backoff alone would have retried after ~0.2 s
    assert last_delivery(api, hook["id"], "delivered", 5)["attempts"] == 2


def test_an_endpoint_failing_for_days_is_disabled(
    settings: Settings, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(lambda n: (500, {}, 0.0))
    # "Days" shortened to 1.5 s; the schedule itself would go on retrying.
    quick = settings.model_copy(
        update={"webhook_disable_after_s": 1.5, "webhook_backoff_s": (0.3,) * 50}
    )
    with served(quick) as api:
        hook = subscribe(api, receiver.url)
        new_case(api, photos)
        wait_until(lambda: not hook_state(api, hook["id"])["active"], 10, "the endpoint disabled")
        assert "failing" in hook_state(api, hook["id"])["disabled_reason"]
        assert [c["kind"] for c in all_changes(api.dispatch)][-1] == "webhook_disabled"
        seen = len(receiver.received)
        assert seen >= 3
        time.sleep(1.0)
        assert len(receiver.received) == seen
        assert deliveries(api, hook["id"])[0]["status"] == "failed"


def test_a_deleted_endpoint_gets_no_further_attempts(
    settings: Settings, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(lambda n: (500, {}, 0.0))
    slow_retry = settings.model_copy(update={"webhook_backoff_s": (1.0, 1.0, 1.0)})
    with served(slow_retry) as api:
        hook = subscribe(api, receiver.url)
        new_case(api, photos)
        receiver.wait_for(1)
        assert api.admin.delete(f"/v1/webhooks/{hook['id']}").status_code == 200
        time.sleep(2.0)
        assert len(receiver.received) == 1
        [d] = deliveries(api, hook["id"])
        assert d["status"] == "failed" and d["last_error"] == "endpoint disabled"


def test_replay_a_delivery_and_a_time_range(
    api: Api, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    hook = subscribe(api, receiver.url)
    new_case(api, photos)
    first = last_delivery(api, hook["id"], "delivered", 10)
    r = api.admin.post(f"/v1/webhooks/{hook['id']}/deliveries/{first['id']}/replay")
    assert r.status_code == 202, r.text
    receiver.wait_for(2)
    assert receiver.ids()[0] == receiver.ids()[1]  # the same message, for deduplication

    # Disabled for a while: what happened meanwhile is replayed once it is enabled again.
    start = datetime.now().astimezone() - timedelta(seconds=1)
    api.admin.delete(f"/v1/webhooks/{hook['id']}").raise_for_status()
    missed = new_case(api, photos, camera="cam-2")
    time.sleep(0.5)
    assert len(receiver.received) == 2
    refused = api.admin.post(f"/v1/webhooks/{hook['id']}/replay", json={"since": start.isoformat()})
    assert refused.status_code == 409
    api.admin.post(f"/v1/webhooks/{hook['id']}/enable").raise_for_status()
    r = api.admin.post(f"/v1/webhooks/{hook['id']}/replay", json={"since": start.isoformat()})
    # The case it missed; not what it had (delivered), nor the event of its own disabling.
    assert r.status_code == 202 and r.json()["queued"] == 1, r.text
    receiver.wait_for(3)
    assert json.loads(receiver.received[2][2])["data"]["case_id"] == missed


def test_a_slow_receiver_delays_nobody_else(
    api: Api, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    slow = receivers(lambda n: (204, {}, 1.5))
    fast = receivers()
    subscribe(api, slow.url)
    subscribe(api, fast.url)
    t0 = time.monotonic()
    for i in range(3):
        new_case(api, photos, camera=f"cam-{i}")
    fast.wait_for(3, timeout=10)
    assert time.monotonic() - t0 < 2.5  # the slow one needs 4.5 s for its three
    assert len(slow.received) <= 2
    slow.wait_for(3, timeout=15)


def test_two_processes_never_send_one_delivery_at_once(
    settings: Settings, photos: list[bytes], receivers: Callable[..., Receiver]
) -> None:
    # A receiver that trickles its answer for 8 s: no single read waits long, but the
    # attempt outlasts its deadline (2 s) and, on the old code, the claim (3 x 2 s), so a
    # second process sent the same delivery while the first was still sending it.
    receiver = receivers(lambda n: (204, {}, 8.0), drip=True)
    # Two servers, one database: two dispatchers.
    with run_server(settings) as other, served(settings) as api:
        hook = subscribe(api, receiver.url)
        new_case(api, photos)
        final = last_delivery(api, hook["id"], "failed", 30)
        assert final["attempts"] == 3 and final["last_error"] == "timed out"
        assert receiver.max_overlap == 1 and len(receiver.received) == 3
        assert other.url != api.url
