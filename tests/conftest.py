"""Shared fixtures. Models and photos are real and live in the StreetWatch cache
($STREETWATCH_HOME, default ~/.cache/streetwatch, the one `make model` fills), not in git."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.default import fetch_default
from models.samples import VTEST_AVI, sample_path


def missing_dependency(what: str) -> None:
    """Skips a test whose system dependency is missing; under CI that is a failure."""
    message = f"needs {what}: run `make system-deps`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def default_model() -> Path:
    """Path of the default model's ONNX file, fetched and verified once per session."""
    _, path = fetch_default()
    return path


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    """Real pedestrian street footage (Debian's opencv-doc)."""
    if not VTEST_AVI.is_file():
        missing_dependency(str(VTEST_AVI))
    return VTEST_AVI


@pytest.fixture(scope="session")
def bus_jpg(default_model: Path) -> Path:
    """A real street photo: a bus and four people (from the default model's wheel)."""
    return sample_path("bus.jpg")


@pytest.fixture(scope="session")
def zidane_jpg(default_model: Path) -> Path:
    """A real photo of two men."""
    return sample_path("zidane.jpg")
