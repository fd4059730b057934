"""Drawing a case's corrected box in the console, in a real browser (Debian's chromium)
against a real `streetwatch serve`: a drag on the evidence image becomes the case's
`reviewed_bbox` in image pixels, drawn afterwards and recorded in the case's history."""

from __future__ import annotations

import httpx
import pytest

from api.contract import EvidenceBox
from api.server.settings import Settings
from tests.api.helpers import post, report
from tests.support.api import run_server

pytestmark = pytest.mark.timeout(180)

DRAG = ((120, 90), (420, 330))  # image pixels: where the reviewer drags from and to


def test_a_reviewer_drags_the_box_on_the_evidence_image(
    browser, screenshots, tmp_path, bus_jpg, zidane_jpg
):
    photos = [bus_jpg.read_bytes(), zidane_jpg.read_bytes()]
    case, files = report(photos, bbox=[40.0, 60.0, 200.0, 220.0])
    seen = [EvidenceBox(bbox=[40.0, 60.0, 200.0, 220.0], label="umbrella", confidence=0.6)]
    case = case.model_copy(
        update={"evidence": [r.model_copy(update={"boxes": seen}) for r in case.evidence]}
    )
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        ingest = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.create_key('ingest')}"}
        )
        assert post(ingest, case, files).status_code == 201
        reviewer = server.create_key("dispatch", name="reviewer")
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {reviewer}"})
        page = browser.new_page()
        page.goto(f"{server.url}/console/login")
        page.fill("#key", reviewer)
        with page.expect_navigation():
            page.click(".login button[type=submit]")
        page.goto(f"{server.url}/console/cases/{case.id}")

        svg = page.locator(".shot svg.boxes").first
        width, height = (int(v) for v in svg.get_attribute("viewBox").split()[2:])

        def on_screen(x: float, y: float) -> tuple[float, float]:
            """An image pixel's place on the page: the image fills the box, letterboxed."""
            r = svg.bounding_box()
            scale = min(r["width"] / width, r["height"] / height)
            left = r["x"] + (r["width"] - width * scale) / 2
            top = r["y"] + (r["height"] - height * scale) / 2
            return left + x * scale, top + y * scale

        page.mouse.move(*on_screen(*DRAG[0]))
        page.mouse.down()
        page.mouse.move(*on_screen(200, 200), steps=5)
        page.mouse.move(*on_screen(*DRAG[1]), steps=5)
        page.mouse.up()
        assert page.url.endswith(f"/console/cases/{case.id}")  # a drag is no click on the link
        typed = [float(v) for v in page.input_value("#box-input").split(",")]
        screenshots(page, "box-drawn")
        with page.expect_navigation():
            page.click("#do-box")

        stored = api.get(f"/v1/cases/{case.id}").raise_for_status().json()
        assert stored["reviewed_bbox"] == typed  # what the form showed is what was saved
        expected = [*DRAG[0], *DRAG[1]]
        assert all(abs(a - b) <= 2 for a, b in zip(stored["reviewed_bbox"], expected, strict=True))
        # Drawn afterwards, and in the history with the box it replaced.
        reviewed = page.locator(".shot svg.boxes rect.reviewed").first
        assert [float(reviewed.get_attribute(k)) for k in ("x", "y")] == typed[:2]
        row = page.locator("#history tr", has_text="位置框修正")
        assert row.count() == 1
        text = row.inner_text()
        assert "40, 60, 200, 220" in text and ", ".join(str(round(v)) for v in typed) in text
        assert "reviewer" in text and "console:" not in text  # the person, by name
        (entry,) = [h for h in stored["history"] if h["kind"] == "box_corrected"]
        assert entry["data"]["old_bbox"] == [40.0, 60.0, 200.0, 220.0]
        screenshots(page, "box-saved")
        page.close()
