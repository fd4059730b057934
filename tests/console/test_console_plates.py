"""The plate on the console, in Debian's chromium against a real server: a parking case's
plate on its page with its `plate` crop, "N earlier cases of this plate in 30 days" linking
to them, and the queue searched by (part of) a plate. The cases are real photos (bus.jpg);
the plates and the plate crop are RENDERED (tests/detector/plate_render.py: a real CJK font,
not photographs)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import cv2
import httpx
import pytest

from api.server.settings import Settings
from tests.detector.plate_render import FONT, render_plate
from tests.support.api import run_server

pytestmark = pytest.mark.timeout(300)
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
PLATE, OTHER = "京A12345", "沪C33M21"


def _jpeg(image) -> bytes:  # type: ignore[no-untyped-def]
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def _post(http: httpx.Client, camera: str, photo: bytes, start: datetime, plate: str,
          crop: bytes | None = None) -> str:  # fmt: skip
    rid = f"{camera}-{start:%m%d%H%M}"
    shots = [("confirmed", photo, [{"bbox": [0.0, 228.0, 810.0, 740.0], "label": "bus"}])]
    if crop is not None:
        shots.append(("plate", crop, []))
    refs, files = [], []
    for kind, data, boxes in shots:
        name = f"{rid}-{kind}.jpg"
        files.append(("evidence", (name, data, "image/jpeg")))
        refs.append({"kind": kind, "path": f"/evidence/{name}", "captured_at": start.isoformat(),
                     "sha256": hashlib.sha256(data).hexdigest(), "boxes": boxes})  # fmt: skip
    body = {
        "id": rid, "type": "illegal_parking", "event_code": "09009", "camera_id": camera,
        "zone_id": "kerb", "class_name": "bus", "confidence": 0.9,
        "bbox": [0.0, 228.0, 810.0, 740.0], "first_seen": start.isoformat(),
        "confirmed_at": (start + timedelta(seconds=60)).isoformat(),
        "last_seen": (start + timedelta(seconds=90)).isoformat(),
        "location": {"lat": 26.58, "lon": 101.72, "grid": "510402001001"},
        "evidence": refs, "plate": plate, "plate_confidence": 0.96,
    }  # fmt: skip
    r = http.post(
        "/v1/cases",
        files=[("case", (None, json.dumps(body), "application/json")), *files],
        headers={"Idempotency-Key": rid},
    )
    assert r.status_code == 201, r.text
    return r.json()["case_id"]


def test_the_plate_on_the_case_page_and_in_the_queue(browser, screenshots, bus_jpg, tmp_path):  # type: ignore[no-untyped-def]
    if not FONT.is_file():
        pytest.skip(f"needs {FONT} (fonts-wqy-microhei): run `make system-deps`")
    photo = bus_jpg.read_bytes()
    crop = _jpeg(cv2.resize(render_plate(PLATE), (220, 70), interpolation=cv2.INTER_AREA))
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        ingest = httpx.Client(base_url=server.url, headers={
            "Authorization": f"Bearer {server.create_key('ingest', name='w')}"})  # fmt: skip
        reviewer = server.create_key("dispatch", name="审核员")
        # The same car parked before: 10 and 3 days ago (counted), 40 days ago (too long ago).
        long_ago = _post(ingest, "cam-1", photo, NOW - timedelta(days=40), PLATE)
        earlier = [_post(ingest, "cam-1", photo, NOW - timedelta(days=d), PLATE) for d in (10, 3)]
        case = _post(ingest, "cam-2", photo, NOW, PLATE, crop)
        other = _post(ingest, "cam-2", photo, NOW + timedelta(minutes=1), OTHER)

        browser.clear_cookies()  # the shared browser: an earlier test's language cookie
        page = browser.new_page()
        page.goto(f"{server.url}/console/login")
        page.fill("#key", reviewer)
        with page.expect_navigation():
            page.click(".login button[type=submit]")

        page.goto(f"{server.url}/console/cases/{case}")
        page.wait_for_load_state("networkidle")
        screenshots(page, "plate-case")
        assert page.inner_text("#plate .plate") == PLATE
        history = page.locator("#plate-history")
        assert "30 天内此车牌另有 2 起案件" in history.inner_text()
        linked = [a.get_attribute("href") for a in history.locator("a").all()[1:]]
        assert linked == [f"/console/cases/{c}" for c in reversed(earlier)]  # newest first
        # The plate crop, shown as it came (no box drawn on it), captioned as the plate.
        figure = page.locator(".more-shots figure.shot", has_text="车牌")
        assert figure.count() == 1 and figure.locator("svg.boxes rect").count() == 0

        # The count links to the queue of those cases (every status, the 30 days).
        with page.expect_navigation():
            history.locator("a").first.click()
        listed = {r.get_attribute("data-case") for r in page.locator("#cases tbody tr").all()}
        assert listed == {*earlier, case}
        assert long_ago not in listed

        # Searching the queue by part of a plate, typed loosely.
        page.goto(f"{server.url}/console?status=all")
        page.fill("#plate-filter", "c33 m")
        with page.expect_navigation():
            page.click(".filters button[type=submit]")
        rows = page.locator("#cases tbody tr")
        assert [r.get_attribute("data-case") for r in rows.all()] == [other]
        assert rows.first.locator(".plate").inner_text() == OTHER
        screenshots(page, "plate-search")
        page.close()
