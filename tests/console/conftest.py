"""Fixtures for the console tests: a headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_dependency
from tests.streams.conftest import rtsp_server_deps  # noqa: F401 - a fixture

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> Iterator[object]:
    """Debian's chromium (never a downloaded browser), fresh profile, headless."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_dependency("playwright (the dev extra)")
    if not Path(CHROMIUM).exists():
        missing_dependency("chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 900},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            yield context
        finally:
            context.close()


class Screenshots:
    """Saves full-page screenshots under the test's tmp dir and, when the environment has
    STREETWATCH_SCREENSHOTS, into that folder too, for a reviewer to look at."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.extra = (
            Path(os.environ["STREETWATCH_SCREENSHOTS"])
            if os.environ.get("STREETWATCH_SCREENSHOTS")
            else None
        )
        self.count = 0

    def __call__(self, page, name: str) -> Path:  # type: ignore[no-untyped-def]
        self.count += 1
        path = self.directory / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.extra is not None:
            self.extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.extra / path.name)
        return path


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Screenshots:
    return Screenshots(tmp_path_factory.mktemp("screenshots"))
