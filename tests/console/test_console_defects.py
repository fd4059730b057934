"""The console defects a browser run found, checked in Debian's chromium against a real
server with cases made of real photos: the reject dialog's suppression fields only for
the reasons that suppress, a merged report's evidence shown with its boxes and camera, the
duplicate picker's candidate with its picture and whole id, no empty "cleared" panel on an
open case, a favicon (no console error), no glyph that a CJK font draws as a blank box, and
the read-only expiry line without the form's "(optional)"."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from api.server.settings import Settings
from tests.support.api import run_server

pytestmark = pytest.mark.timeout(300)
T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def _photos(*paths: Path) -> list[bytes]:
    out = []
    for path in paths:
        img = cv2.imread(str(path))
        assert img is not None
        for i in range(3):
            h, w = img.shape[:2]
            crop = np.ascontiguousarray(img[i * 8 : h - i * 8, i * 8 : w - i * 8])
            ok, buf = cv2.imencode(".jpg", crop)
            assert ok
            out.append(buf.tobytes())
    return out


def _post(http: httpx.Client, camera: str, photos: list[bytes], at: tuple[float, float],
          start: datetime) -> str:  # fmt: skip
    rid = f"{camera}-{start:%H%M%S}"
    refs, files = [], []
    for i, data in enumerate(photos):
        name = f"{rid}-{i}.jpg"
        # A worker sends each image with its de-identified rendition (same size); lists and
        # pickers show renditions only, so the picker's picture needs one.
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        ok, blurred = cv2.imencode(".jpg", cv2.GaussianBlur(image, (15, 15), 0))
        assert ok
        deid, deid_name = blurred.tobytes(), f"{rid}-{i}.deid.jpg"
        files.append(("evidence", (name, data, "image/jpeg")))
        files.append(("evidence", (deid_name, deid, "image/jpeg")))
        refs.append({
            "kind": "first_seen" if i == 0 else "confirmed",
            "path": f"/evidence/{name}",
            "captured_at": (start + timedelta(seconds=30 * i)).isoformat(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "boxes": [{"bbox": [40.0, 60.0, 300.0, 400.0], "label": "bus", "confidence": 0.9}],
            "deidentified": {"path": f"/evidence/{deid_name}",
                             "sha256": hashlib.sha256(deid).hexdigest()},
        })  # fmt: skip
    body = {
        "id": rid, "type": "illegal_parking", "event_code": "09009", "camera_id": camera,
        "zone_id": "kerb", "class_name": "bus", "confidence": 0.9,
        "bbox": [40.0, 60.0, 300.0, 400.0], "first_seen": start.isoformat(),
        "confirmed_at": (start + timedelta(seconds=60)).isoformat(),
        "last_seen": (start + timedelta(seconds=90)).isoformat(),
        "location": {"lat": at[0], "lon": at[1], "grid": "510402001001"},
        "position": {"lat": at[0], "lon": at[1]}, "evidence": refs,
    }  # fmt: skip
    r = http.post(
        "/v1/cases",
        files=[("case", (None, json.dumps(body), "application/json")), *files],
        headers={"Idempotency-Key": rid},
    )
    assert r.status_code in (200, 201), r.text
    return r.json()["case_id"]


def test_console_defects_are_fixed(browser, screenshots, bus_jpg, zidane_jpg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    photos = _photos(bus_jpg, zidane_jpg)
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        ingest = httpx.Client(base_url=server.url, headers={
            "Authorization": f"Bearer {server.create_key('ingest', name='w')}"})  # fmt: skip
        reviewer = server.create_key("dispatch", name="王审核")
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {reviewer}"})
        merged = _post(ingest, "cam-1", photos[0:2], (26.58, 101.71), T0)
        # Another camera sees the same bus 5 m away: merged into the first case.
        again = _post(ingest, "cam-2", photos[2:4], (26.58004, 101.71), T0 + timedelta(minutes=1))
        assert again == merged
        other = _post(ingest, "cam-3", photos[4:6], (26.581, 101.711), T0 + timedelta(minutes=2))
        permitted = _post(ingest, "cam-4", photos[1:3], (26.59, 101.72), T0 + timedelta(minutes=3))
        api.post(f"/v1/cases/{permitted}/transitions", json={
            "to": "rejected", "actor": "x", "reason": "permitted"}).raise_for_status()  # fmt: skip

        # The browser is shared: an earlier test may have left its language cookie (English).
        browser.clear_cookies()
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/console/login")
        page.fill("#key", reviewer)
        with page.expect_navigation():
            page.click(".login button[type=submit]")

        page.goto(f"{server.url}/console/cases/{merged}")
        page.wait_for_load_state("networkidle")
        screenshots(page, "merged-case")
        # No empty "cleared / no image" panel while the object is still there.
        assert page.locator(".shots figure.shot").count() == 2
        assert page.locator(".shots .noimg").count() == 0
        # The merged report's frames: full-size figures with their boxes and camera.
        extra = page.locator(".more-shots figure.shot")
        assert extra.count() == 2
        assert extra.first.locator("svg.boxes rect.seen").count() == 1
        assert extra.first.locator(".cam").inner_text() == "cam-2"
        assert extra.first.locator("img").bounding_box()["width"] >= 200  # type: ignore[index]
        # The duplicate picker: the candidate's picture and its whole id, readable.
        preview = page.locator("#duplicate-preview")
        assert preview.locator("a.id").inner_text() == other
        assert preview.locator("img").count() == 1
        assert page.evaluate(
            "(() => { const a = document.querySelector('#duplicate-preview a.id');"
            " return a.scrollWidth <= a.clientWidth + 1; })()"
        )
        # The reject dialog: suppression fields only for permitted / fixture.
        page.keyboard.press("r")
        options = page.locator("#reject-form .suppress-options")
        page.check("#reject-form input[value=false_detection]")
        assert not options.is_visible()
        page.check("#reject-form input[value=permitted]")
        assert options.is_visible()
        screenshots(page, "reject-permitted")
        page.check("#reject-form input[value=other]")
        assert not options.is_visible()
        page.keyboard.press("Escape")

        page.goto(f"{server.url}/console/cases/{permitted}")
        page.wait_for_load_state("networkidle")
        screenshots(page, "suppressed-case")
        line = page.inner_text(".suppressed")
        assert "⛔" not in page.content()
        assert "有效至: 永久" in line and "（可选）" not in line
        # A favicon, so a fresh browser logs no 404 for it; no other console error either.
        icon = httpx.get(server.url + page.get_attribute("link[rel=icon]", "href"))
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
        assert errors == [], errors
