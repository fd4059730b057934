"""The dwell strip on the console's case page, in a real browser (Debian's chromium) against
a real `streetwatch serve`, with cases from real footage: `streetwatch score --post` on
vtest.avi with a bus that parks, leaves and parks again (tests/console/scenes.py, bay B).
Each stay is a case with its strip; merged as duplicates, the case shows both strips, each
under its report."""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from api.contract import DEFAULT_TZ
from api.server.settings import Settings
from streams.cli import main
from tests.console.scenes import BAY_B, RULES, camera, two_bays
from tests.support.api import run_server

pytestmark = pytest.mark.timeout(300)


def local_time(iso: str) -> str:
    """A time as the console writes it under a thumbnail: in the city's zone."""
    at = datetime.fromisoformat(iso).astimezone(ZoneInfo(DEFAULT_TZ))
    tenths = f".{at.microsecond // 100_000}" if at.microsecond else ""
    return at.strftime("%H:%M:%S") + tenths


def test_the_case_page_shows_each_reports_dwell_strip(
    browser, screenshots, default_model, vtest_avi, bus_jpg, tmp_path, monkeypatch
):
    clip = two_bays(tmp_path / "two_bays.mp4", vtest_avi, bus_jpg)
    cams = [camera("cam-1", str(clip), {"bay-b": BAY_B}, 26.58, "510402001001",
                   start_time="2026-05-01T08:00:00+08:00")]  # fmt: skip
    config = tmp_path / "score.yaml"
    config.write_text(yaml.safe_dump({"model": "default", "rules": RULES, "cameras": cams}))
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        monkeypatch.setenv("STREETWATCH_API_KEY", server.create_key("ingest"))
        argv = ["score", "--config", str(config), "--out", str(tmp_path / "cases.jsonl"),
                "--evidence-dir", str(tmp_path / "evidence"), "--post", server.url]  # fmt: skip
        assert main(argv) == 0
        reviewer = server.create_key("dispatch", name="reviewer")
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {reviewer}"})
        items = api.get("/v1/cases").raise_for_status().json()["items"]
        first, second = sorted(items, key=lambda c: c["first_seen"])

        def strip(case: dict, report_id: str) -> list[dict]:
            mine = [e for e in case["evidence"] if e["kind"] == "dwell"]
            return sorted(
                (e for e in mine if e["report_id"] == report_id),
                key=lambda e: datetime.fromisoformat(e["captured_at"]),
            )

        # The second stay is merged into the first: both reports' strips on one case.
        api.post(
            f"/v1/cases/{second['id']}/transitions",
            json={"to": "duplicate", "duplicate_of": first["id"], "actor": "reviewer"},
        ).raise_for_status()
        case = api.get(f"/v1/cases/{first['id']}").raise_for_status().json()
        reports = [first["report_ids"][0], second["report_ids"][0]]
        assert case["report_ids"] == reports
        expected = {rid: strip(case, rid) for rid in reports}
        assert all(5 <= len(shots) <= 8 for shots in expected.values()), expected

        page = browser.new_page()
        page.goto(f"{server.url}/console/login")
        page.fill("#key", reviewer)
        with page.expect_navigation():
            page.click(".login button[type=submit]")
        page.goto(f"{server.url}/console/cases/{case['id']}")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#strips img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )

        # Between the first-seen / confirmed / cleared panels and the history.
        assert page.evaluate(
            """() => {
                const [shots, strips, history] = ['.shots', '#strips', '.history']
                    .map(s => document.querySelector(s));
                const after = (a, b) =>
                    a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING;
                return Boolean(after(shots, strips) && after(strips, history));
            }"""
        )
        shown = page.eval_on_selector_all("#strips .strip", "ss => ss.map(s => s.dataset.report)")
        assert shown == reports  # one strip per report, in the order the case received them
        for rid in reports:
            strip_el = page.locator(f"#strips .strip[data-report='{rid}']")
            assert rid in strip_el.locator("h3").inner_text()
            assert "cam-1" in strip_el.locator("h3").inner_text()
            thumbs = strip_el.locator("figure.thumb")
            want = expected[rid]
            assert thumbs.count() == len(want)
            # In time order, the time under each, the image and the box of each thumbnail.
            captions = thumbs.locator("figcaption").all_inner_texts()
            assert captions == [local_time(e["captured_at"]) for e in want]
            assert captions == sorted(captions) and len(set(captions)) == len(captions)
            for i, e in enumerate(want):
                thumb = thumbs.nth(i)
                # A dispatch session is shown the original (each fetch audited for the case).
                src = thumb.locator("img").get_attribute("src")
                assert src == f"/console/evidence/{e['sha256']}?case={case['id']}"
                assert thumb.locator("img").evaluate("i => i.naturalWidth") == e["width"] == 320
                rect = thumb.locator("svg.boxes rect.seen")
                x1, y1, x2, y2 = e["boxes"][0]["bbox"]
                assert float(rect.get_attribute("x")) == x1
                assert float(rect.get_attribute("y")) == y1
                assert float(rect.get_attribute("width")) == pytest.approx(x2 - x1)
                # The bus in bay B: its box lies in the thumbnail's right half, low down.
                assert 160 < (x1 + x2) / 2 < 320 and 120 < (y1 + y2) / 2 < 240
            # Thumbnails are not the full frames' box-drawing surface.
            assert strip_el.locator("svg.boxes.drawable").count() == 0
        path = screenshots(page, "strip-case")
        # A click opens the full image.
        e = expected[reports[0]][2]
        href = f"/console/evidence/{e['sha256']}?case={case['id']}"
        with page.expect_navigation():
            page.locator(f"#strips a[href='{href}']").click()
        assert page.url.endswith(href)
        body = page.evaluate(
            "async () => Array.from(new Uint8Array("
            "await (await fetch(location.href)).arrayBuffer()))"
        )
        assert hashlib.sha256(bytes(body)).hexdigest() == e["sha256"]
        assert path.exists()

        # The de-identified view: every thumbnail is its rendition, the same size.
        page.goto(f"{server.url}/console/cases/{case['id']}?view=deidentified")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#strips img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        srcs = page.eval_on_selector_all("#strips img", "is => is.map(i => i.getAttribute('src'))")
        renditions = [e["deidentified"]["sha256"] for rid in reports for e in expected[rid]]
        assert srcs == [f"/console/evidence/{sha}" for sha in renditions]
        widths = page.eval_on_selector_all("#strips img", "is => is.map(i => i.naturalWidth)")
        assert set(widths) == {320}
        screenshots(page, "strip-case-deidentified")
        page.close()
