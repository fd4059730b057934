"""The change feed: every change exactly once, in order, even while writers race."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx

from tests.api.helpers import FAR, HERE, NEARBY, T0, Api, all_changes, patch, post, report


def test_feed_lists_every_change_once_in_order(api: Api, photos: list[bytes]) -> None:
    # Calibrated cameras: the stall's ground points lie about 1 m apart.
    a, files = report(photos, camera="cam-1", position={"lat": HERE[0], "lon": HERE[1]})
    case_id = post(api.ingest, a, files, key="a").json()["case_id"]
    post(api.ingest, a, files, key="a")  # replay: no change
    b, files = report(photos, camera="cam-2", at=NEARBY, photo_offset=2,
                      position={"lat": HERE[0] + 0.00001, "lon": HERE[1]})  # fmt: skip
    post(api.ingest, b, files, key="b")  # merge
    patch(api.ingest, b.id, {"last_seen": (T0 + timedelta(minutes=9)).isoformat()})
    patch(api.ingest, b.id, {"last_seen": (T0 + timedelta(minutes=9)).isoformat()})  # no change
    api.dispatch.post(
        f"/v1/cases/{case_id}/transitions", json={"to": "accepted", "actor": "li"}
    ).raise_for_status()
    api.dispatch.post(  # refused: no change
        f"/v1/cases/{case_id}/transitions", json={"to": "closed", "actor": "li"}
    )
    c, files = report(photos, camera="cam-3", at=FAR)
    post(api.ingest, c, files, key="c")

    changes = all_changes(api.dispatch, page=2)
    assert [(ch["kind"], ch["event_type"]) for ch in changes] == [
        ("created", "case.created"),
        ("merged", "case.merged"),
        ("observation", "case.observed"),
        ("transition", "case.transitioned"),
        ("created", "case.created"),
    ]
    seqs = [ch["seq"] for ch in changes]
    assert seqs == sorted(set(seqs))
    assert changes[3]["from_status"] == "reported" and changes[3]["to_status"] == "accepted"
    assert changes[1]["data"]["case"]["report_count"] == 2  # the case as it then was
    # Polling at the end returns nothing new and keeps the cursor.
    tail = api.dispatch.get("/v1/changes", params={"cursor": str(seqs[-1])}).json()
    assert tail == {"changes": [], "next_cursor": str(seqs[-1])}
    assert api.dispatch.get("/v1/changes", params={"cursor": "x"}).status_code == 400


def test_poller_never_misses_or_repeats_while_workers_post(api: Api, photos: list[bytes]) -> None:
    """Eight workers post 48 reports (many merging) while a consumer polls the feed."""
    reports = []
    for i in range(48):
        site = (30.27 + (i % 12) * 0.01, 120.15)  # 12 sites, four reports each
        placed = {"lat": site[0], "lon": site[1]}  # calibrated cameras
        reports.append(report(photos, camera=f"cam-{i}", at=site, n_evidence=1, photo_offset=i,
                              position=placed))  # fmt: skip
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def consume() -> None:
        cursor = "0"
        with httpx.Client(base_url=api.url, headers=api.dispatch.headers) as client:
            while True:
                finished = done.is_set()  # read before polling: one more full poll after
                body = client.get("/v1/changes", params={"cursor": cursor, "limit": 5}).json()
                seen.extend(body["changes"])
                cursor = body["next_cursor"]
                if finished and not body["changes"]:
                    return

    poller = threading.Thread(target=consume)
    poller.start()

    def send(item: tuple[Any, Any]) -> int:
        case, files = item
        with httpx.Client(base_url=api.url, headers=api.ingest.headers, timeout=60) as client:
            return post(client, case, files, key=case.id).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, reports))
    done.set()
    poller.join(60)

    assert statuses.count(201) == 12 and statuses.count(200) == 36
    seqs = [c["seq"] for c in seen]
    assert seqs == sorted(set(seqs)), "out of order or repeated"
    assert len(seen) == 48
    assert seen == all_changes(api.dispatch, page=100)
