"""Real photos (from the default model's wheel) and footage (Debian's opencv-doc) for
tests, calibration, the demo and the benchmarks."""

from __future__ import annotations

from pathlib import Path

from models.cache import samples_dir
from models.default import SAMPLES, fetch_default

# Real pedestrian street footage and photos, from Debian's opencv-doc (`make system-deps`
# installs it): box.png is a real cardboard box, fruits.jpg a real pile of fruit.
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST_AVI = OPENCV_DATA / "vtest.avi"


def sample_path(name: str) -> Path:
    """Path of a sample photo ("bus.jpg", "zidane.jpg"), fetching the default model if needed."""
    if name not in SAMPLES:
        raise KeyError(f"no sample {name!r}; available: {sorted(SAMPLES)}")
    path = samples_dir() / name
    if not path.exists():
        fetch_default()
    return path
