"""POST /v1/cases: idempotency, validation, and 'nothing stored' on every refusal."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from api.contract import CaseReport, EvidenceRef
from tests.api.helpers import Api, all_changes, count_cases, is_problem, post, report


def test_new_report_opens_a_case_with_its_evidence(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    r = post(api.ingest, case, files, key="k1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["merged"] is False and body["report_count"] == 1 and body["status"] == "reported"
    assert r.headers["location"] == f"/v1/cases/{body['case_id']}"

    got = api.dispatch.get(f"/v1/cases/{body['case_id']}").raise_for_status().json()
    assert got["type"] == "street_stall" and got["event_code"] == "09006"
    assert got["sources"] == ["cam-1"] and got["report_ids"] == [case.id]
    assert [e["sha256"] for e in got["evidence"]] == [e.sha256 for e in case.evidence]
    assert [h["kind"] for h in got["history"]] == ["created"]
    image = api.dispatch.get(got["evidence"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(image.content).hexdigest() == case.evidence[0].sha256


def test_same_report_twice_makes_one_case(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    first = post(api.ingest, case, files, key="same")
    again = post(api.ingest, case, files, key="same")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # The same incident under another key (say, a lost outbox record): still one case.
    other_key = post(api.ingest, case, files, key="another")
    assert other_key.status_code == 200
    assert other_key.json()["case_id"] == first.json()["case_id"]
    assert count_cases(api.dispatch) == 1
    assert [c["kind"] for c in all_changes(api.dispatch)] == ["created"]


def test_idempotency_key_reused_for_another_payload_is_refused(
    api: Api, photos: list[bytes]
) -> None:
    case, files = report(photos)
    assert post(api.ingest, case, files, key="k").status_code == 201
    before = sorted(api.evidence_files)
    other, other_files = report(photos, camera="cam-9", photo_offset=4, at=None)
    body = is_problem(post(api.ingest, other, other_files, key="k"), 422)
    assert body["type"].endswith("idempotency-key-reused")
    assert count_cases(api.dispatch) == 1
    assert sorted(api.evidence_files) == before  # the other photos were not kept


def test_a_later_state_of_a_report_under_its_key_updates_the_case(
    api: Api, photos: list[bytes]
) -> None:
    """A fleet worker that took a camera over confirms an incident its dead predecessor had
    reported: the same id, hence the same key, another payload (its own confirmation time,
    evidence, last sighting). That is an update of the case, not a 422 (which would bury the
    report and every later update in the worker's dead letters); an older state, the first
    sender's late redelivery, changes nothing; anything else under the key is still a 422."""
    first, first_files = report(photos)
    created = post(api.ingest, first, first_files)
    assert created.status_code == 201, created.text
    case_id = created.json()["case_id"]
    later = first.model_copy(
        update={
            "confirmed_at": first.confirmed_at + timedelta(seconds=5),
            "last_seen": first.last_seen + timedelta(seconds=60),
            "cleared_at": first.last_seen + timedelta(seconds=90),
            "confidence": 0.7,
        }
    )
    later_ref, later_file = _ref(photos[6], "next-0.jpg", later.last_seen)
    later.evidence = [later_ref]
    updated = post(api.ingest, later, [later_file])
    assert updated.status_code == 200, updated.text
    assert updated.json()["case_id"] == case_id and updated.json()["report_count"] == 1
    assert "idempotent-replayed" not in updated.headers
    got = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert got["last_seen"] == later.last_seen.isoformat().replace("+00:00", "Z")
    assert got["cleared_at"] == later.cleared_at.isoformat().replace("+00:00", "Z")
    assert later_ref.sha256 in {e["sha256"] for e in got["evidence"]}
    assert [c["kind"] for c in all_changes(api.dispatch)] == ["created", "observation"]

    # The first sender's state, delivered late: the case keeps what it knows.
    assert post(api.ingest, first, first_files).status_code == 201  # an exact replay
    older = first.model_copy(update={"last_seen": first.last_seen - timedelta(seconds=30)})
    stale = post(api.ingest, older, first_files)
    assert stale.status_code == 200, stale.text
    again = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert (again["last_seen"], again["cleared_at"]) == (got["last_seen"], got["cleared_at"])
    assert len(all_changes(api.dispatch)) == 2

    # Not the same incident under the key: refused, nothing stored.
    before = sorted(api.evidence_files)
    for conflict in (
        first.model_copy(update={"first_seen": first.first_seen - timedelta(seconds=1)}),
        first.model_copy(update={"zone_id": "sidewalk-b"}),
        CaseReport.model_validate({**first.model_dump(), "type": "garbage", "event_code": "06010"}),
    ):
        body = is_problem(post(api.ingest, conflict, first_files, key=first.id), 422)
        assert body["type"].endswith("idempotency-key-reused")
    other, other_files = report(photos, photo_offset=4)
    is_problem(post(api.ingest, other, other_files, key=first.id), 422)
    assert sorted(api.evidence_files) == before
    assert count_cases(api.dispatch) == 1


def _ref(data: bytes, name: str, at: datetime) -> tuple[EvidenceRef, tuple[str, bytes]]:
    sha = hashlib.sha256(data).hexdigest()
    ref = EvidenceRef(kind="confirmed", path=f"/e/{name}", captured_at=at, sha256=sha)
    return ref, (name, data)


def test_missing_idempotency_key_is_400(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    is_problem(post(api.ingest, case, files, key=None), 400)
    assert count_cases(api.dispatch) == 0 and api.evidence_files == []


def test_malformed_json_is_400_and_invalid_report_422(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    body = is_problem(post(api.ingest, '{"id": "x", ', files), 400)
    assert "JSON" in body["detail"]
    bad = case.model_dump(mode="json") | {"confidence": 7, "type": "ufo"}
    body = is_problem(post(api.ingest, json.dumps(bad), files), 422)
    assert {tuple(e["loc"]) for e in body["errors"]} == {("case", "confidence"), ("case", "type")}
    missing_field = api.ingest.post(
        "/v1/cases", files=[("x", (None, "1"))], headers={"Idempotency-Key": "k"}
    )
    is_problem(missing_field, 422)
    assert count_cases(api.dispatch) == 0 and api.evidence_files == []


def test_non_image_evidence_is_refused_and_nothing_stored(api: Api, photos: list[bytes]) -> None:
    fake = b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10
    case, files = report(photos, n_evidence=2)
    refs = list(case.evidence)
    refs[1] = refs[1].model_copy(update={"sha256": hashlib.sha256(fake).hexdigest()})
    case = case.model_copy(update={"evidence": refs})
    files[1] = (files[1][0], fake)
    body = is_problem(post(api.ingest, case, files), 422)
    assert body["type"].endswith("invalid-evidence")
    text = b"hello, I am a text file"
    refs[1] = refs[1].model_copy(update={"sha256": hashlib.sha256(text).hexdigest()})
    case = case.model_copy(update={"evidence": refs})
    files[1] = (files[1][0], text)
    is_problem(post(api.ingest, case, files), 422)
    assert count_cases(api.dispatch) == 0 and api.evidence_files == []
    assert all_changes(api.dispatch) == []


def test_evidence_must_match_the_report(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, n_evidence=2)
    is_problem(post(api.ingest, case, files[:1]), 422)  # missing
    is_problem(post(api.ingest, case, [*files, ("extra.jpg", photos[5])]), 422)  # extra
    swapped = [(files[0][0], files[1][1]), (files[1][0], files[0][1])]
    body = is_problem(post(api.ingest, case, swapped), 422)  # hash mismatch
    assert "sha256" in body["detail"]
    assert count_cases(api.dispatch) == 0 and api.evidence_files == []


def test_oversized_body_and_evidence_are_413(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, n_evidence=1)
    big = photos[0] + b"\0" * (5 * 1024 * 1024)  # over the 4 MiB body limit
    body = is_problem(post(api.ingest, case, [(files[0][0], big)]), 413)
    assert body["type"].endswith("body-too-large")
    # Under the body limit but over the 2 MiB evidence limit.
    big = photos[0] + b"\0" * (3 * 1024 * 1024)
    refs = [case.evidence[0].model_copy(update={"sha256": hashlib.sha256(big).hexdigest()})]
    big_case = case.model_copy(update={"evidence": refs})
    body = is_problem(post(api.ingest, big_case, [(files[0][0], big)]), 413)
    assert body["type"].endswith("evidence-too-large")
    assert count_cases(api.dispatch) == 0 and api.evidence_files == []


def test_chunked_body_over_the_limit_is_413(api: Api, photos: list[bytes]) -> None:
    case, _ = report(photos, n_evidence=1)
    part = b'Content-Disposition: form-data; name="evidence"; filename="x.jpg"'

    def stream():  # no Content-Length: the limit is enforced while reading
        yield b'--b\r\nContent-Disposition: form-data; name="case"\r\n\r\n'
        yield case.model_dump_json().encode()
        yield b"\r\n--b\r\n" + part + b"\r\n\r\n"
        for _ in range(6):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    r = api.ingest.post(
        "/v1/cases",
        content=stream(),
        headers={"Idempotency-Key": "k", "Content-Type": "multipart/form-data; boundary=b"},
    )
    is_problem(r, 413)
    assert count_cases(api.dispatch) == 0 and api.evidence_files == []


def test_unknown_event_code_is_422(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos, code="06010")  # a garbage code on a street stall
    body = is_problem(post(api.ingest, case, files), 422)
    assert "09006" in body["detail"]
    assert count_cases(api.dispatch) == 0 and api.evidence_files == []
