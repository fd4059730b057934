"""The review console in a real browser (Debian's chromium) against a real `streetwatch
serve`, with real cases: `streetwatch score --post` on real footage (vtest.avi with two buses
from bus.jpg), then a live `streetwatch run` on a loopback RTSP camera.

A reviewer signs in, triages the queue with the keyboard, rejects a bus that belongs there
as a `fixture`, sees the suppression; the live worker then stops reporting that site while
the other bay of the same camera is still reported; the statistics match the cases.
Screenshots of every page land in the test's tmp dir (and $STREETWATCH_SCREENSHOTS).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import httpx
import pytest
import yaml

from api.client.outbox import Outbox
from api.server.settings import Settings
from streams.cli import main
from tests.console.scenes import BAY_A, BAY_B, RULES, camera, two_bays
from tests.streams.test_worker import Worker
from tests.support.api import run_server
from tests.support.testcam import RtspServer, free_port, wait_until

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, vtest_avi, bus_jpg, rtsp_server_deps) -> Path:
    return two_bays(tmp_path_factory.mktemp("console") / "two_bays.mp4", vtest_avi, bus_jpg)


def score_and_post(tmp_path: Path, clip: Path, url: str, key: str, monkeypatch) -> None:
    """`streetwatch score --post`: cam-1 watches both bays, cam-2 (another street) one."""
    cams = [
        camera("cam-1", str(clip), {"bay-a": BAY_A, "bay-b": BAY_B}, 26.58, "510402001001",
               start_time="2026-05-01T08:00:00+08:00"),
        camera("cam-2", str(clip), {"bay": BAY_B}, 26.59, "510402001002",
               start_time="2026-05-01T09:00:00+08:00"),
    ]  # fmt: skip
    config = tmp_path / "score.yaml"
    config.write_text(yaml.safe_dump({"model": "default", "rules": RULES, "cameras": cams}))
    monkeypatch.setenv("STREETWATCH_API_KEY", key)
    argv = ["score", "--config", str(config), "--out", str(tmp_path / "cases.jsonl"),
            "--evidence-dir", str(tmp_path / "evidence"), "--post", url]  # fmt: skip
    assert main(argv) == 0


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})

    def cases(self) -> list[dict]:
        return self.http.get("/v1/cases", params={"limit": 500}).raise_for_status().json()["items"]

    def case(self, case_id: str) -> dict:
        return self.http.get(f"/v1/cases/{case_id}").raise_for_status().json()


def rows(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all("#cases tbody tr", "rs => rs.map(r => r.dataset.case)")


def select_row(page, case_id: str) -> None:  # type: ignore[no-untyped-def]
    """Moves the queue's selection to a case with j/k, as a reviewer would."""
    listed = rows(page)
    current = page.eval_on_selector_all(
        "#cases tbody tr", "rs => rs.findIndex(r => r.classList.contains('sel'))"
    )
    target = listed.index(case_id)
    for _ in range(abs(target - current)):
        page.keyboard.press("j" if target > current else "k")
    assert page.get_attribute("#cases tbody tr.sel", "data-case") == case_id


def press_and_wait(page, key: str) -> None:  # type: ignore[no-untyped-def]
    with page.expect_navigation():
        page.keyboard.press(key)


def flash(page) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text("#flash")


def test_review_console_end_to_end(
    browser, screenshots, clip, default_model, tmp_path, monkeypatch
):
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        ingest = server.create_key("ingest", name="worker-1")
        reviewer = server.create_key("dispatch", name="王审核")
        other = Api(server.url, server.create_key("dispatch", name="other-reviewer"))
        score_and_post(tmp_path, clip, server.url, ingest, monkeypatch)
        api = Api(server.url, reviewer)
        scored = api.cases()
        assert len(scored) == 5

        def find(cam: str, zone: str, stay: int = 0) -> str:
            mine = sorted(
                (c for c in scored if c["camera_id"] == cam and c["zone_id"] == zone),
                key=lambda c: c["first_seen"],
            )
            return mine[stay]["id"]

        a, b1, b2 = find("cam-1", "bay-a"), find("cam-1", "bay-b"), find("cam-1", "bay-b", 1)
        c1, c2 = find("cam-2", "bay"), find("cam-2", "bay", 1)

        page = browser.new_page()
        # -- sign in: a wrong key is refused, the reviewer's key opens the queue ---------
        page.goto(f"{server.url}/console")
        assert page.url.endswith("/console/login")
        page.fill("#key", "sw_nope_nope")
        page.click(".login button[type=submit]")
        assert "密钥无效" in page.inner_text("#login-error")
        screenshots(page, "sign-in")
        page.fill("#key", reviewer)
        with page.expect_navigation():
            page.click(".login button[type=submit]")
        assert reviewer not in page.url
        cookie = next(c for c in browser.cookies() if c["name"] == "sw_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # -- the queue: five reported cases, counted per filter --------------------------
        assert sorted(rows(page)) == sorted([a, b1, b2, c1, c2])
        assert page.inner_text("[data-facet='camera:cam-1'] .n") == "3"
        assert page.inner_text("[data-facet='grid:510402001002'] .n") == "2"
        assert "09009 机动车乱停放" in page.inner_text("#cases")
        screenshots(page, "queue")

        # -- keyboard triage: accept both cam-2 cases ------------------------------------
        for case_id in (c1, c2):
            select_row(page, case_id)
            press_and_wait(page, "a")
            assert case_id in flash(page) and "已立案" in flash(page)
            assert case_id not in rows(page)
        assert api.case(c1)["status"] == api.case(c2)["status"] == "accepted"

        # -- reject bus A as a fixture: 1-5 pick the reason, Enter confirms --------------
        select_row(page, a)
        page.keyboard.press("r")
        page.wait_for_selector("#reject-dialog[open]")
        page.keyboard.press("3")
        assert page.is_checked("#reject-form input[value=fixture]")
        assert page.is_visible(".suppress-options")
        screenshots(page, "reject-dialog")
        press_and_wait(page, "Enter")
        assert "已注销" in flash(page)
        rejected = api.case(a)
        assert rejected["status"] == "rejected"
        assert rejected["history"][-1]["data"]["reason"] == "fixture"

        # -- the suppression it made ------------------------------------------------------
        page.click("nav a[href='/console/suppressions']")
        table = page.inner_text("#suppressions")
        assert "cam-1" in table and "bay-a" in table and "固定设施" in table and a in table
        page.fill("#suppressions form.edit input[name=note]", "路边固定垃圾桶旁的常驻大巴")
        with page.expect_navigation():
            page.click("#suppressions form.edit button[value=save]")
        assert "已保存" in flash(page)
        screenshots(page, "suppressions")
        (rule,) = httpx.get(
            f"{server.url}/v1/suppressions", headers={"Authorization": f"Bearer {ingest}"}
        ).json()["items"]
        assert (rule["camera_id"], rule["zone_id"], rule["reason"]) == ("cam-1", "bay-a", "fixture")
        assert rule["case_id"] == a and rule["note"].startswith("路边")

        # -- the case page: b2 is a duplicate of b1, chosen from nearby open cases --------
        page.goto(f"{server.url}/console")
        select_row(page, b2)
        press_and_wait(page, "Enter")
        assert page.url.split("?")[0].endswith(f"/console/cases/{b2}")
        for kind in ("首次发现", "确认"):
            assert kind in page.inner_text(".shots")
        assert page.eval_on_selector_all(
            ".shots img", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"
        )
        screenshots(page, "case")
        # The evidence is the unaltered frame; the worker's box is an SVG overlay drawn at
        # the box's place on the image as the browser lays it out.
        first = next(e for e in api.case(b2)["evidence"] if e["kind"] == "first_seen")
        ix, iy, iw, ih, rx, ry, rw, rh = page.evaluate(
            """() => {
                const f = document.querySelector('.shots .frame');
                const i = f.querySelector('img').getBoundingClientRect();
                const r = f.querySelector('rect.seen').getBoundingClientRect();
                return [i.x, i.y, i.width, i.height, r.x, r.y, r.width, r.height];
            }"""
        )
        scale = min(iw / first["width"], ih / first["height"])  # object-fit: contain
        ox, oy = ix + (iw - first["width"] * scale) / 2, iy + (ih - first["height"] * scale) / 2
        x1, y1, x2, y2 = first["boxes"][0]["bbox"]
        for got, want in ((rx, ox + x1 * scale), (ry, oy + y1 * scale),
                          (rw, (x2 - x1) * scale), (rh, (y2 - y1) * scale)):  # fmt: skip
            assert abs(got - want) < 3, (got, want)
        # A reviewer corrects the box (training data): typed digits are no shortcuts.
        page.fill("#box-input", "400, 380, 700, 560")
        with page.expect_navigation():
            page.click("#do-box")
        assert "位置框已保存" in flash(page)
        assert api.case(b2)["reviewed_bbox"] == [400.0, 380.0, 700.0, 560.0]
        assert page.query_selector(".shots rect.reviewed") is not None
        page.keyboard.press("d")
        assert page.evaluate("document.activeElement.id") == "duplicate-of"
        page.select_option("#duplicate-of", b1)
        press_and_wait(page, "Enter")
        assert api.case(b2)["status"] == "duplicate" and api.case(b2)["duplicate_of"] == b1

        # -- b1: someone else accepts it first; the stale page is refused clearly --------
        page.goto(f"{server.url}/console/cases/{b1}")
        other.http.post(
            f"/v1/cases/{b1}/transitions", json={"to": "accepted", "actor": "other"}
        ).raise_for_status()
        press_and_wait(page, "a")
        assert "已被他人处理" in flash(page) and "已立案" in flash(page)
        # dispatch with a note, resolve, close: all from the keyboard
        page.keyboard.press("p")
        page.keyboard.type("派往城管一中队")
        press_and_wait(page, "Enter")
        assert "已派遣" in flash(page)
        press_and_wait(page, "v")
        press_and_wait(page, "c")
        assert api.case(b1)["status"] == "closed"
        history = page.inner_text("#history")
        assert "派往城管一中队" in history and "已结案" in history
        assert page.is_disabled("#do-accept")  # out of order now
        screenshots(page, "case-closed")

        # -- live: the worker stops reporting bus A, still reports bus B -----------------
        page.goto(f"{server.url}/console")
        assert rows(page) == []  # the queue is clear
        with RtspServer({"cam": clip}, fps=10, width=768, height=576, keyint=10) as street:
            config = tmp_path / "live.yaml"
            live = [
                camera("cam-1", street.url("cam"), {"bay-a": BAY_A, "bay-b": BAY_B}, 26.58,
                       "510402001001"),
                camera("cam-dead", f"rtsp://127.0.0.1:{free_port()}/gone", {"bay": BAY_B},
                       26.60, "510402001003"),
            ]  # fmt: skip
            config.write_text(
                yaml.safe_dump(
                    {
                        "model": "default",
                        "rules": RULES,
                        "api": {"url": server.url, "suppressions_poll_s": 1, "health_every_s": 1},
                        "cameras": live,
                    }
                )
            )
            worker = Worker(config, tmp_path / "state", ingest)
            worker.start()
            try:
                # The queue updates by itself when the live case arrives.
                page.wait_for_selector("#cases tbody tr", timeout=120_000)
                (new,) = [c for c in api.cases() if c["id"] not in {x["id"] for x in scored}]
                assert (new["camera_id"], new["zone_id"]) == ("cam-1", "bay-b")
                assert rows(page) == [new["id"]]
                assert page.is_visible("#live")
                screenshots(page, "queue-live")
                wait_until(
                    lambda: worker.metric(
                        "streetwatch_suppressed_total", camera="cam-1", why="suppressed"
                    ) >= 1,
                    30,
                    "bus A counted as suppressed",
                )  # fmt: skip

                # cameras: the live one up with its picture, the dead one visible as such
                def cameras_shown() -> bool:
                    page.goto(f"{server.url}/console/cameras")
                    up = page.query_selector("[data-camera='cam-1'].state-up img")
                    dead = page.query_selector(
                        "[data-camera='cam-dead'].state-reconnecting, "
                        "[data-camera='cam-dead'].state-dead"
                    )
                    return bool(up and dead)

                wait_until(cameras_shown, 40, "camera health on the cameras page")
                assert page.eval_on_selector(
                    "[data-camera='cam-1'] img", "i => i.complete && i.naturalWidth > 0"
                )
                screenshots(page, "cameras")
            finally:
                worker.stop()
        assert not [c for c in api.cases() if c["zone_id"] == "bay-a" and c["id"] != a]
        assert any("not reported (suppressed)" in line for line in worker.log)
        box = Outbox(tmp_path / "state" / "outbox.sqlite3")
        assert box.counts()["dead_letter"] == 0  # nothing sent about the held incident
        box.close()

        # -- statistics match the cases ---------------------------------------------------
        everything = api.cases()
        accepted = sum(
            any(h["to_status"] == "accepted" for h in api.case(c["id"])["history"])
            for c in everything
        )
        assert (len(everything), accepted) == (6, 3)  # c1, c2, b1 accepted; a, b2 not
        page.goto(f"{server.url}/console/stats")
        assert page.inner_text("#total-cases") == "6"
        assert page.inner_text("#total-reports") == "6"
        assert page.inner_text("#total-accepted") == "3"
        assert page.inner_text("#total-rejected") == "2"  # a as fixture, b2 as duplicate
        assert page.inner_text("#total-rate") == "60%"
        assert page.query_selector("svg.chart rect")
        screenshots(page, "stats")
        response = page.request.get(f"{server.url}/console/stats.csv?group=camera")
        assert response.ok and response.headers["content-type"].startswith("text/csv")
        table = {r["camera"]: r for r in csv.DictReader(io.StringIO(response.text()))}
        assert table["cam-1"]["cases"] == "4" and table["cam-2"]["accepted"] == "2"
        assert table["cam-1"]["rejected_fixture"] == "1"
        assert table["total"]["acceptance_rate"] == "0.6000"
        page.goto(f"{server.url}/console/stats?group=type")
        screenshots(page, "stats-by-type")

        # -- English, then sign out ------------------------------------------------------
        page.goto(f"{server.url}/console?status=all")
        with page.expect_navigation():
            page.click("#lang-switch")
        assert "Queue" in page.inner_text("h1") and "Illegal parking" in page.inner_text("#cases")
        screenshots(page, "queue-english")
        with page.expect_navigation():
            page.click("#logout")
        page.goto(f"{server.url}/console")
        assert page.url.endswith("/console/login")
        page.close()
    assert screenshots.count >= 10
    assert all(p.stat().st_size > 10_000 for p in screenshots.directory.glob("*.png"))
    print(f"screenshots: {screenshots.directory}")
    if os.environ.get("STREETWATCH_SCREENSHOTS"):
        assert re.search(
            r"\d", str(len(list(Path(os.environ["STREETWATCH_SCREENSHOTS"]).glob("*.png"))))
        )
