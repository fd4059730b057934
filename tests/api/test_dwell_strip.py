"""A case's dwell strip through the API: thumbnails of kind `dwell` stored as other evidence,
named by the feed, bounded per report however often they are sent, refused with a clear
422 when they are not a strip (too many, not thumbnails, outside the dwell)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import pytest

from api.contract import CaseReport, EvidenceBox, EvidenceRef, Rendition
from tests.api.helpers import (
    HERE,
    NEARBY,
    T0,
    Api,
    all_changes,
    is_problem,
    patch,
    post,
    report,
)

BOX = [60.0, 50.0, 260.0, 200.0]  # in the thumbnails' 320 x 240 pixels


@pytest.fixture(scope="session")
def thumbnails(bus_jpg: Path) -> list[bytes]:
    """Distinct real thumbnails, 320 x 240: the bus photo cropped a little further each."""
    image = cv2.imread(str(bus_jpg))
    out = []
    for i in range(24):
        crop = image[i * 8 : 720 + i * 8, : 810 - i * 4]
        ok, buf = cv2.imencode(".jpg", cv2.resize(crop, (320, 240), interpolation=cv2.INTER_AREA))
        assert ok
        out.append(buf.tobytes())
    return out


def strip(
    rid: str, thumbs: list[bytes], times: list[datetime], renditions: list[bytes] | None = None
) -> tuple[list[EvidenceRef], list[tuple[str, bytes]]]:
    refs, files = [], []
    for i, (data, at) in enumerate(zip(thumbs, times, strict=True)):
        name = f"{rid}-dwell-{int(at.timestamp())}.jpg"
        deid = None
        if renditions is not None:
            deid = Rendition(
                path=f"/var/lib/streetwatch/evidence/{name}.deid.jpg",
                sha256=hashlib.sha256(renditions[i]).hexdigest(),
            )
            files.append((f"{name}.deid.jpg", renditions[i]))
        refs.append(
            EvidenceRef(
                kind="dwell",
                path=f"/var/lib/streetwatch/evidence/{name}",
                captured_at=at,
                sha256=hashlib.sha256(data).hexdigest(),
                boxes=[EvidenceBox(bbox=BOX, label="stall", confidence=0.8)],
                deidentified=deid,
            )
        )
        files.append((name, data))
    return refs, files


def with_strip(
    photos: list[bytes],
    thumbs: list[bytes],
    times: list[datetime],
    renditions: list[bytes] | None = None,
    **kw,
) -> tuple[CaseReport, list[tuple[str, bytes]]]:
    """A report (first seen T0, confirmed T0+60 s, last seen T0+120 s) with its strip."""
    case, files = report(photos, **kw)
    refs, thumb_files = strip(case.id, thumbs, times, renditions)
    return case.model_copy(update={"evidence": [*case.evidence, *refs]}), files + thumb_files


def dwell_of(case: dict) -> list[dict]:
    return [e for e in case["evidence"] if e["kind"] == "dwell"]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_report_carries_its_strip_and_the_feed_names_it(
    api: Api, photos: list[bytes], thumbnails: list[bytes]
) -> None:
    before = [at(s) for s in (0, 15, 30, 45, 60)]
    case, files = with_strip(photos, thumbnails[:5], before)
    assert post(api.ingest, case, files).status_code == 201
    out = api.dispatch.get(f"/v1/cases/{case.id}").raise_for_status().json()
    shown = dwell_of(out)
    assert [datetime.fromisoformat(e["captured_at"]) for e in shown] == before
    assert [e["sha256"] for e in shown] == [r.sha256 for r in case.evidence[2:]]
    for e in shown:
        assert (e["width"], e["height"]) == (320, 240)
        assert e["boxes"] == [{"bbox": BOX, "label": "stall", "confidence": 0.8}]
        assert e["report_id"] == case.id and e["camera_id"] == "cam-1"
        stored = api.dispatch.get(e["url"]).raise_for_status().content
        assert hashlib.sha256(stored).hexdigest() == e["sha256"]

    # The rest of the strip comes with the clearing; sent twice, it changes nothing.
    later, later_files = strip(case.id, thumbnails[5:8], [at(s) for s in (80, 100, 120)])
    observation = {
        "last_seen": at(120).isoformat(),
        "cleared_at": at(150).isoformat(),
        "evidence": [r.model_dump(mode="json") for r in later],
    }
    assert patch(api.ingest, case.id, observation, later_files).json()["changed"] is True
    assert patch(api.ingest, case.id, observation, later_files).json()["changed"] is False
    out = api.dispatch.get(f"/v1/cases/{case.id}").raise_for_status().json()
    assert len(dwell_of(out)) == 8

    # The feed names them as it names other evidence: by hash, the case's snapshot by kind.
    created, observed = [c for c in all_changes(api.dispatch) if c["case_id"] == out["id"]]
    assert created["data"]["evidence"] == [r.sha256 for r in case.evidence]
    assert observed["data"]["evidence"] == [r.sha256 for r in later]
    assert [e["kind"] for e in observed["data"]["case"]["evidence"]].count("dwell") == 8
    assert "thinned" not in observed["data"]

    # Open311 shows a frame's rendition, never a thumbnail's: these frames have none, the
    # thumbnails do, so the request has no media.
    with_renditions, files = with_strip(
        photos, thumbnails[10:15], before, renditions=thumbnails[15:20]
    )
    receipt = post(api.ingest, with_renditions, files).json()
    [request] = api.dispatch.get(f"/open311/v2/requests/{receipt['case_id']}.json").json()
    assert request["media_url"] is None


def test_the_strip_stays_bounded_over_updates(
    api: Api, photos: list[bytes], thumbnails: list[bytes]
) -> None:
    """A sender that keeps sending new thumbnails (a worker does not) never takes a report's
    strip past 8: the 8 evenly spread over its time stay, the others' images are deleted."""
    case, files = with_strip(photos, thumbnails[:5], [at(s) for s in (0, 15, 30, 45, 60)])
    assert post(api.ingest, case, files).status_code == 201
    sent = {r.sha256: r.captured_at for r in case.evidence[2:]}
    for round_ in range(4):
        chunk = thumbnails[5 + 3 * round_ : 8 + 3 * round_]
        times = [at(61 + 3 * round_ + i) for i in range(3)]
        refs, thumb_files = strip(case.id, chunk, times)
        sent.update({r.sha256: r.captured_at for r in refs})
        observation = {"evidence": [r.model_dump(mode="json") for r in refs]}
        assert patch(api.ingest, case.id, observation, thumb_files).json()["changed"] is True
        out = api.dispatch.get(f"/v1/cases/{case.id}").raise_for_status().json()
        kept = dwell_of(out)
        assert len(kept) == 8
        kept_at = [datetime.fromisoformat(e["captured_at"]) for e in kept]
        assert min(kept_at) == min(sent.values()) and max(kept_at) == max(sent.values())
        # Stored: the two frames and the 8 thumbnails, nothing else.
        assert len(api.evidence_files) == 10
    changes = [c for c in all_changes(api.dispatch) if c["kind"] == "observation"]
    thinned = [sha for c in changes for sha in c["data"].get("thinned", [])]
    assert len(thinned) == 5 + 12 - 8
    assert set(thinned) <= set(sent)
    for sha in thinned:
        assert api.dispatch.get(f"/v1/evidence/{sha}").status_code == 404


def test_merged_reports_keep_a_strip_each(
    api: Api, photos: list[bytes], thumbnails: list[bytes]
) -> None:
    """Two calibrated cameras place the stall at one spot: one case, a strip per report."""
    times = [at(s) for s in (0, 15, 30, 45, 60)]
    spot = {"lat": HERE[0], "lon": HERE[1]}
    first, files = with_strip(photos, thumbnails[:5], times, camera="cam-1", position=spot)
    second, files2 = with_strip(
        photos, thumbnails[5:10], times, camera="cam-2", at=NEARBY, photo_offset=2, position=spot
    )
    assert post(api.ingest, first, files).status_code == 201
    receipt = post(api.ingest, second, files2).json()
    assert receipt["merged"] is True and receipt["report_count"] == 2
    out = api.dispatch.get(f"/v1/cases/{receipt['case_id']}").raise_for_status().json()
    by_report = {
        rid: [e for e in dwell_of(out) if e["report_id"] == rid] for rid in out["report_ids"]
    }
    assert {rid: len(v) for rid, v in by_report.items()} == {first.id: 5, second.id: 5}
    assert {e["camera_id"] for e in by_report[second.id]} == {"cam-2"}


def test_a_reviewers_box_is_in_frame_pixels_not_a_thumbnails(
    api: Api, photos: list[bytes], thumbnails: list[bytes]
) -> None:
    case, files = with_strip(photos, thumbnails[:5], [at(s) for s in (0, 15, 30, 45, 60)])
    assert post(api.ingest, case, files).status_code == 201
    fixed = [300.0, 300.0, 700.0, 640.0]  # on the frames, off every thumbnail
    r = api.dispatch.put(f"/v1/cases/{case.id}/box", json={"bbox": fixed})
    assert r.status_code == 200, r.text
    assert r.json()["reviewed_bbox"] == fixed


def test_a_report_of_thumbnails_only_is_not_judged_by_their_size(
    api: Api, thumbnails: list[bytes]
) -> None:
    case, files = with_strip([], thumbnails[:2], [at(0), at(60)], n_evidence=0)
    assert case.bbox == [100.0, 200.0, 300.0, 400.0]  # below the thumbnails' 240 rows
    assert post(api.ingest, case, files).status_code == 201


@pytest.mark.parametrize(
    ("what", "detail"),
    [
        ("nine", "'evidence'] Value error, 9 dwell thumbnails: a report's strip holds at most 8"),
        ("frame", "is a dwell thumbnail of 810x1080: neither side may exceed 640 pixels"),
        ("early", "evidence.2.captured_at a dwell thumbnail is taken between first_seen and"),
        ("late", "evidence.6.captured_at a dwell thumbnail is taken between first_seen and"),
    ],
)
def test_what_is_no_strip_is_refused_and_nothing_is_stored(
    api: Api,
    photos: list[bytes],
    thumbnails: list[bytes],
    bus_jpg: Path,
    what: str,
    detail: str,
) -> None:
    times = [at(s) for s in (0, 15, 30, 45, 60)]
    thumbs = thumbnails[:5]
    if what == "nine":
        times, thumbs = [at(s) for s in range(0, 90, 10)], thumbnails[:9]
    elif what == "frame":
        thumbs = [bus_jpg.read_bytes(), *thumbnails[1:5]]
    elif what == "early":
        times = [at(-1), *times[1:]]
    elif what == "late":
        times = [*times[:4], at(121)]
    case, files = with_strip(photos, thumbs, times)
    # Built unvalidated (model_copy), as a sender that skips the contract would send it.
    response = post(api.ingest, case, files)
    problem = is_problem(response, 422)
    said = [problem["detail"], *(f"{e['loc']} {e['msg']}" for e in problem.get("errors", []))]
    assert any(detail in line for line in said), problem
    assert api.dispatch.get(f"/v1/cases/{case.id}").status_code == 404
    assert api.evidence_files == []
