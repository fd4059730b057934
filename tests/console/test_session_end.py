"""An open queue tab whose session ends (here: its key revoked) in a real browser (Debian's
chromium) against a real `streetwatch serve`: the tab goes to the sign-in page, which says
the session ended, and after signing in again the reviewer is back on the same queue.
(Issue 28: the tab kept polling, got 401s and showed a queue that looked live but was not.)"""

from __future__ import annotations

import httpx
import pytest

from api.server.settings import Settings
from tests.api.helpers import post, report
from tests.support.api import run_server

pytestmark = pytest.mark.timeout(180)


def sign_in(page, key: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#key", key)
    with page.expect_navigation():
        page.click(".login button[type=submit]")


def test_a_queue_whose_session_ended_sends_the_reviewer_to_sign_in(
    browser, screenshots, tmp_path, bus_jpg, zidane_jpg
):
    photos = [bus_jpg.read_bytes(), zidane_jpg.read_bytes()]
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        ingest = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.create_key('ingest')}"}
        )
        case, files = report(photos)
        assert post(ingest, case, files).status_code == 201
        admin = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.create_key('admin')}"}
        )
        reviewer = server.create_key("dispatch", name="reviewer")
        browser.clear_cookies()  # the shared browser's language and sessions of other tests
        page = browser.new_page()
        queue = f"{server.url}/console?status=all&order=oldest"
        page.goto(queue)
        assert "/console/login" in page.url
        sign_in(page, reviewer)
        page.goto(queue)
        assert page.locator("#cases tbody tr").count() == 1

        key_id = reviewer.split("_")[1]
        assert admin.delete(f"/v1/keys/{key_id}").status_code in (200, 204)
        # The queue polls every 3 s; its next poll finds the session gone.
        page.wait_for_url("**/console/login?ended=1*", timeout=20_000)
        assert page.inner_text("#login-error") == "会话已过期，请重新登录"
        screenshots(page, "session-ended")

        sign_in(page, server.create_key("dispatch", name="reviewer-2"))
        assert page.url == queue  # back where the reviewer was, filters and all
        assert page.locator("#cases tbody tr").count() == 1
        page.close()
