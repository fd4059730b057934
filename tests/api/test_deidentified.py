"""Who sees which evidence image, over real HTTP: originals only to the `dispatch` scope (each
console view audited, the log read by admins), renditions to everyone else and to the
de-identified webhook endpoints, originals deleted by retention while the renditions and the
case stay. The reports carry real JPEGs with renditions made by detector.deidentify's
`obscure` (tests/api/helpers.py); the worker's own renditions are tested end to end in
tests/test_deidentified_outputs.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from api.server.settings import Settings
from api.server.tables import Case
from models.dataset import ClassMap
from streams.training.dataset import from_api
from tests.api.helpers import Api, post, report
from tests.api.test_console import sign_in
from tests.api.test_webhooks import Receiver, receivers  # noqa: F401  # the fixture

STREETWATCH = Path(sys.executable).with_name("streetwatch")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _views(api: Api, **params: str) -> list[dict]:
    r = api.admin.get("/v1/audit/original-views", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_console_shows_originals_only_to_dispatch_and_logs_each_view(
    api: Api, photos: list[bytes]
) -> None:
    case, files = report(photos, renditions=True)
    case_id = post(api.ingest, case, files).json()["case_id"]
    original, rendition = case.evidence[0].sha256, case.evidence[0].deidentified.sha256
    data = dict(files)

    dispatcher, signed = sign_in(api, api.server.create_key("dispatch", name="wang"))
    assert signed.status_code == 303
    page = dispatcher.get(f"/console/cases/{case_id}").text
    assert f"/console/evidence/{original}?case={case_id}" in page
    assert 'id="toggle-view"' in page
    assert _views(api) == []  # the page itself shows no image: its fetches do
    shown = dispatcher.get(f"/console/evidence/{original}?case={case_id}")
    assert shown.status_code == 200 and shown.content == data[case.evidence[0].filename]
    assert shown.headers["cache-control"] == "private, no-store"  # every view comes back
    dispatcher.get(f"/console/evidence/{original}?case={case_id}").raise_for_status()
    annotated = dispatcher.get(f"/console/cases/{case_id}/evidence/{original}/annotated")
    assert annotated.status_code == 200
    views = _views(api, case_id=case_id)
    assert [(v["actor"], v["sha256"], v["case_id"], v["what"]) for v in views] == [
        ("console:wang", original, case_id, "annotated"),
        ("console:wang", original, case_id, "image"),
        ("console:wang", original, case_id, "image"),
    ]
    # The toggle: the same session sees the renditions, and that is not logged.
    deidentified = dispatcher.get(f"/console/cases/{case_id}?view=deidentified").text
    assert f"/console/evidence/{rendition}" in deidentified
    assert f"/console/evidence/{original}" not in deidentified
    assert dispatcher.get(f"/console/evidence/{rendition}").content == _rendition_bytes(case, data)
    assert len(_views(api)) == 3

    # A reviewer without `dispatch`: renditions only, the original refused, nothing logged.
    reviewer, signed = sign_in(api, api.server.create_key("review", name="chen"))
    assert signed.status_code == 303
    page = reviewer.get(f"/console/cases/{case_id}").text
    assert f"/console/evidence/{rendition}" in page and original not in page
    assert 'id="toggle-view"' not in page
    assert reviewer.get(f"/console/evidence/{original}?case={case_id}").status_code == 403
    assert reviewer.get(f"/console/evidence/{rendition}").status_code == 200
    # Its annotated download is drawn on the rendition, as the dispatcher's toggled one is.
    mine = reviewer.get(f"/console/cases/{case_id}/evidence/{original}/annotated")
    theirs = dispatcher.get(
        f"/console/cases/{case_id}/evidence/{original}/annotated?view=deidentified"
    )
    assert mine.status_code == 200 and mine.content == theirs.content != annotated.content
    assert reviewer.post(f"/console/cases/{case_id}/accept").status_code in (303, 403)
    assert api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "reported"
    assert len(_views(api)) == 3

    # Admins read the log in the console too; the API's log needs `admin`.
    admin, _ = sign_in(api, api.server.create_key("dispatch", "admin", name="boss"))
    audit_page = admin.get("/console/audit")
    assert audit_page.status_code == 200
    assert (
        audit_page.text.count(f'data-sha="{original}"') == 3 and "console:wang" in audit_page.text
    )
    assert dispatcher.get("/console/audit").status_code == 403
    assert api.dispatch.get("/v1/audit/original-views").status_code == 403


def _rendition_bytes(case, data: dict[str, bytes]) -> bytes:
    return data[case.evidence[0].deidentified.filename]


def test_the_api_annotates_the_rendition_when_asked(api: Api, photos: list[bytes]) -> None:
    with_renditions, files = report(photos, renditions=True, n_evidence=1)
    without, old_files = report(photos, camera="cam-9", n_evidence=1, photo_offset=3)
    case_id = post(api.ingest, with_renditions, files).json()["case_id"]
    old_id = post(api.ingest, without, old_files).json()["case_id"]
    sha = with_renditions.evidence[0].sha256
    original = api.dispatch.get(f"/v1/cases/{case_id}/evidence/{sha}/annotated")
    drawn = api.dispatch.get(f"/v1/cases/{case_id}/evidence/{sha}/annotated?view=deidentified")
    assert original.status_code == drawn.status_code == 200
    assert original.content != drawn.content
    missing = api.dispatch.get(
        f"/v1/cases/{old_id}/evidence/{without.evidence[0].sha256}/annotated?view=deidentified"
    )
    assert missing.status_code == 404 and missing.json()["type"].endswith("no-rendition")
    stored = api.dispatch.get(f"/v1/cases/{case_id}").json()["evidence"][0]
    assert stored["deidentified"]["sha256"] == with_renditions.evidence[0].deidentified.sha256


def test_a_rendition_of_another_size_is_refused(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, renditions=True, n_evidence=1)
    name = case.evidence[0].deidentified.filename
    other = photos[5]
    case.evidence[0].deidentified.sha256 = _sha(other)
    refused = post(api.ingest, case, [(n, other if n == name else d) for n, d in files])
    assert refused.status_code == 422 and "rendition" in refused.json()["detail"]
    assert api.evidence_files == []  # nothing kept of a refused report


def test_webhooks_get_renditions_unless_the_endpoint_chose_originals(
    api: Api,
    photos: list[bytes],
    receivers: Callable[..., Receiver],  # noqa: F811
) -> None:
    public, internal = receivers(), receivers()
    hooks = {}
    for receiver, evidence in ((public, None), (internal, "original")):
        body = {"url": receiver.url, "event_types": ["case.created"]}
        if evidence:
            body["evidence"] = evidence
        r = api.admin.post("/v1/webhooks", json=body)
        assert r.status_code == 201, r.text
        hooks[r.json()["evidence"]] = r.json()["id"]
    assert set(hooks) == {"deidentified", "original"}  # de-identified unless chosen
    case, files = report(photos, renditions=True)
    post(api.ingest, case, files).raise_for_status()
    public.wait_for(1)
    internal.wait_for(1)
    originals = {e.sha256 for e in case.evidence}
    renditions = {e.deidentified.sha256 for e in case.evidence}

    _, _, body = public.received[0]
    for sha in originals:
        assert sha.encode() not in body  # not even a hash of an original
    data = json.loads(body)["data"]["data"]
    assert {e["sha256"] for e in data["case"]["evidence"]} == renditions
    assert set(data["evidence"]) == renditions
    for entry in data["case"]["evidence"]:
        link = entry["deidentified"]["media_url"].replace(api.server.settings.base_url, api.url)
        image = httpx.get(link)  # no key: the signed link is the receiver's way in
        assert image.status_code == 200 and _sha(image.content) == entry["sha256"]

    _, _, body = internal.received[0]
    data = json.loads(body)["data"]["data"]
    assert {e["sha256"] for e in data["case"]["evidence"]} == originals
    assert all(e["deidentified"]["media_url"] is None for e in data["case"]["evidence"])


def test_prune_deletes_originals_on_schedule_and_keeps_renditions_and_the_case(
    api: Api, photos: list[bytes], settings: Settings
) -> None:
    done, done_files = report(photos, renditions=True, camera="cam-1")
    still_open, open_files = report(photos, renditions=True, camera="cam-2", photo_offset=4)
    done_id = post(api.ingest, done, done_files).json()["case_id"]
    open_id = post(api.ingest, still_open, open_files).json()["case_id"]
    for to in ("accepted", "dispatched", "resolved", "closed"):
        api.dispatch.post(
            f"/v1/cases/{done_id}/transitions", json={"to": to, "actor": "li"}
        ).raise_for_status()
    stored = {p.name for p in api.evidence_files}
    assert len(stored) == 8  # two cases, two images each, each with its rendition

    def prune() -> dict[str, int]:
        env = {**os.environ, "STREETWATCH_DB": settings.database_url,
               "STREETWATCH_DATA": str(settings.data_dir)}  # fmt: skip
        run = subprocess.run(
            [str(STREETWATCH), "prune", "--retention-originals-days", "3"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout.strip().splitlines()[-1])

    assert prune()["originals"] == 0  # closed today: not yet
    with api.server.db.write() as session:
        session.execute(
            update(Case)
            .where(Case.id == done_id)
            .values(updated_at=datetime.now(UTC) - timedelta(days=4))
        )
    assert prune()["originals"] == 2
    assert prune()["originals"] == 0  # done once

    case = api.dispatch.get(f"/v1/cases/{done_id}").json()  # the case record stays
    for e in case["evidence"]:
        assert e["removed_at"] is not None
        assert api.dispatch.get(e["url"]).status_code == 404
        assert api.dispatch.get(e["deidentified"]["url"]).status_code == 200
    [request] = api.dispatch.get(f"/open311/v2/requests/{done_id}.json").json()
    assert request["media_url"] is not None  # public outputs still have the rendition
    for e in api.dispatch.get(f"/v1/cases/{open_id}").json()["evidence"]:
        assert e["removed_at"] is None and api.dispatch.get(e["url"]).status_code == 200
    assert len({p.name for p in api.evidence_files}) == 6
    # The console falls back to the rendition, saying the original is gone.
    dispatcher, _ = sign_in(api, api.server.create_key("dispatch", name="wang"))
    page = dispatcher.get(f"/console/cases/{done_id}").text
    assert done.evidence[0].deidentified.sha256 in page and done.evidence[0].sha256 not in page
    # A training export takes the closed case's images no more: it says why, and goes on.
    skipped: list[str] = []
    key = api.server.create_key("dispatch", name="trainer")
    samples = list(from_api(api.url, key, ClassMap(["stall"], {}), skipped))
    assert {s.case_id for s in samples} <= {open_id}
    assert (
        sum(f"case {done_id}: evidence" in s and "deleted by retention" in s for s in skipped) == 2
    )
