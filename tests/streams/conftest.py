"""Fixtures for the stream tests: real footage, clips made with ffmpeg, loopback cameras."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing_dependency
from tests.support.testcam import SYSTEM_PYTHON


def _rtsp_server_missing() -> str | None:
    if shutil.which("ffmpeg") is None:
        return "ffmpeg"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
    probe += "; from gi.repository import GstRtspServer"
    if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode:
        return "GStreamer RTSP server for /usr/bin/python3"
    return None


@pytest.fixture(scope="session")
def rtsp_server_deps() -> None:
    missing = _rtsp_server_missing()
    if missing:
        missing_dependency(missing)


@pytest.fixture(scope="session")
def still_clip(tmp_path_factory: pytest.TempPathFactory, rtsp_server_deps: None) -> Path:
    """Three seconds of one unchanging picture (colour bars)."""
    path = tmp_path_factory.mktemp("clips") / "still.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "smptebars=size=320x240:rate=10",
         "-t", "3", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def still_then_moving_clip(
    tmp_path_factory: pytest.TempPathFactory, rtsp_server_deps: None
) -> Path:
    """Four seconds of a still picture, then four of a moving test pattern."""
    path = tmp_path_factory.mktemp("clips") / "still_then_moving.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error",
         "-f", "lavfi", "-i", "smptebars=size=320x240:rate=10:duration=4",
         "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=4",
         "-filter_complex", "[0:v][1:v]concat=n=2:v=1", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path
