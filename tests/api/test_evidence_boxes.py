"""Clean evidence through the API: the stored image is the unaltered upload, the boxes are
metadata, drawn on a copy when asked for; a reviewer can correct a case's box."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from api.contract import EvidenceBox
from tests.api.helpers import Api, all_changes, is_problem, post, report
from tests.api.test_console import csrf_of, sign_in

BOX = [40.0, 60.0, 200.0, 220.0]


def _with_boxes(photos: list[bytes], boxes: list[EvidenceBox]):
    case, files = report(photos)
    refs = [r.model_copy(update={"boxes": boxes}) for r in case.evidence]
    return case.model_copy(update={"evidence": refs}), files


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.astype(int)


def _outline(shape: tuple[int, ...], bbox: list[float]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    x1, y1, x2, y2 = (round(v) for v in bbox)
    cv2.rectangle(mask, (x1, y1), (x2, y2), 1, 2)
    return mask.astype(bool)


def test_boxes_are_stored_as_metadata_and_drawn_on_a_copy(api: Api, photos: list[bytes]) -> None:
    case, files = _with_boxes(photos, [EvidenceBox(bbox=BOX, label="stall", confidence=0.87)])
    assert post(api.ingest, case, files).status_code == 201
    out = api.dispatch.get(f"/v1/cases/{case.id}").raise_for_status().json()
    first = out["evidence"][0]
    h, w = _decode(files[0][1]).shape[:2]
    assert (first["width"], first["height"]) == (w, h)
    assert first["boxes"] == [{"bbox": BOX, "label": "stall", "confidence": 0.87}]
    assert out["reviewed_bbox"] is None

    stored = api.dispatch.get(first["url"]).raise_for_status().content
    assert stored == files[0][1]  # unaltered, byte for byte
    assert hashlib.sha256(stored).hexdigest() == first["sha256"]

    drawn = api.dispatch.get(first["annotated_url"]).raise_for_status()
    assert drawn.headers["content-type"] == "image/jpeg"
    original, annotated = _decode(stored), _decode(drawn.content)
    outline = _outline(original.shape, BOX)
    b, g, r = (annotated[outline][:, i].mean() for i in range(3))
    assert r > 180 and g < 90 and b < 90  # the red box
    assert np.abs(annotated - original)[~outline].mean() < 25  # the rest is the photo


def test_a_box_off_the_image_is_refused_and_nothing_is_stored(
    api: Api, photos: list[bytes]
) -> None:
    case, files = _with_boxes(photos, [EvidenceBox(bbox=[10, 10, 5000, 20], label="stall")])
    body = is_problem(post(api.ingest, case, files), 422)
    assert "box 0" in body["detail"] and "is not a box on its" in body["detail"]
    assert api.dispatch.get(f"/v1/cases/{case.id}").status_code == 404
    assert api.evidence_files == []


def test_a_reviewer_corrects_the_box(api: Api, photos: list[bytes]) -> None:
    case, files = _with_boxes(photos, [EvidenceBox(bbox=BOX, label="stall")])
    assert post(api.ingest, case, files).status_code == 201
    fixed = [50.0, 70.0, 180.0, 210.0]
    out = api.dispatch.put(f"/v1/cases/{case.id}/box", json={"bbox": fixed}).raise_for_status()
    assert out.json()["reviewed_bbox"] == fixed
    ev = out.json()["evidence"][0]
    annotated = _decode(api.dispatch.get(ev["annotated_url"]).raise_for_status().content)
    b, g, r = (annotated[_outline(annotated.shape, fixed)][:, i].mean() for i in range(3))
    assert g > 110 and r < 90 and b < 90  # the reviewer's box, green

    big = is_problem(
        api.dispatch.put(f"/v1/cases/{case.id}/box", json={"bbox": [0, 0, 9e4, 9]}), 422
    )
    assert "is not a box on the case's" in big["detail"]
    flipped = api.dispatch.put(f"/v1/cases/{case.id}/box", json={"bbox": [200, 10, 100, 50]})
    is_problem(flipped, 422)
    assert api.dispatch.get(f"/v1/cases/{case.id}").json()["reviewed_bbox"] == fixed
    # Workers cannot review.
    assert api.ingest.put(f"/v1/cases/{case.id}/box", json={"bbox": fixed}).status_code == 403


def test_the_console_overlays_the_boxes_and_takes_a_correction(
    sqlite_api: Api, photos: list[bytes]
) -> None:
    case, files = _with_boxes(photos, [EvidenceBox(bbox=BOX, label="stall", confidence=0.5)])
    assert post(sqlite_api.ingest, case, files).status_code == 201
    browser, _ = sign_in(sqlite_api, sqlite_api.server.create_key("dispatch", name="reviewer"))
    page = browser.get(f"/console/cases/{case.id}").text
    h, w = _decode(files[0][1]).shape[:2]
    assert f'viewBox="0 0 {w} {h}"' in page
    assert '<rect class="seen" x="40.0" y="60.0" width="160.0" height="160.0"' in page
    assert ">stall 0.50</text>" in page
    sha = case.evidence[0].sha256
    drawn = browser.get(f"/console/cases/{case.id}/evidence/{sha}/annotated")
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"

    token = csrf_of(page)
    url = f"/console/cases/{case.id}/box"
    assert browser.post(url, data={"bbox": "50, 70, 180, 210"}).status_code == 403  # no CSRF
    assert browser.post(url, data={"bbox": "50, 70, 180, 210", "csrf": token}).status_code == 303
    assert sqlite_api.dispatch.get(f"/v1/cases/{case.id}").json()["reviewed_bbox"] == [
        50.0,
        70.0,
        180.0,
        210.0,
    ]
    page = browser.get(f"/console/cases/{case.id}").text
    assert '<rect class="reviewed" x="50.0" y="70.0" width="130.0" height="140.0"' in page
    # A malformed box is refused with a message and changes nothing.
    browser.post(url, data={"bbox": "50, 70", "csrf": token})
    assert "✗" in browser.get(f"/console/cases/{case.id}").text
    assert sqlite_api.dispatch.get(f"/v1/cases/{case.id}").json()["reviewed_bbox"][0] == 50.0


def test_every_correction_is_in_the_case_history_and_the_feed(api: Api, photos: list[bytes]):
    case, files = _with_boxes(photos, [EvidenceBox(bbox=BOX, label="stall")])
    case = case.model_copy(update={"bbox": BOX})
    assert post(api.ingest, case, files).status_code == 201
    first, second = [50.0, 70.0, 180.0, 210.0], [45.0, 65.0, 190.0, 215.0]
    for box in (first, second):
        api.dispatch.put(f"/v1/cases/{case.id}/box", json={"bbox": box}).raise_for_status()
    refused = api.dispatch.put(f"/v1/cases/{case.id}/box", json={"bbox": [0, 0, 9e4, 9]})
    is_problem(refused, 422)  # and no entry for it
    history = api.dispatch.get(f"/v1/cases/{case.id}").raise_for_status().json()["history"]
    corrections = [h for h in history if h["kind"] == "box_corrected"]
    # The first replaces the worker's box, the second the first.
    assert [(h["data"]["old_bbox"], h["data"]["bbox"]) for h in corrections] == [
        (BOX, first),
        (first, second),
    ]
    assert {h["event_type"] for h in corrections} == {"case.box_corrected"}
    assert {h["actor"] for h in corrections} == {"key:dispatch"}  # the key that made them
    assert corrections[-1]["data"]["case"]["reviewed_bbox"] == second
    feed = [c for c in all_changes(api.dispatch) if c["kind"] == "box_corrected"]
    assert [c["seq"] for c in feed] == [h["seq"] for h in corrections]
