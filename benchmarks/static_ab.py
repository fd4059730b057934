"""The static-object stage's CPU per sample, an earlier commit's against this tree's, in one
process on the same samples, runs interleaved (ABAB), so a shared machine's load falls on both.

`python -m benchmarks.static_ab COMMIT`: the stage of `detector/static_objects.py` at COMMIT
(read with `git show`) and the working tree's, fed vtest.avi's frames scaled to 1920x1080 and to
640x360 as samples 0.5 s apart, with no detections, by day and at night (a colour camera at
high gain in a third of the light, where the noise sets the stage's bar); prints the medians
and their ratio. Set against the default model's inference, the ratio carries RESULTS section
2's figure over. It also runs this tree's stage on one OpenCV thread, as the live worker runs it
(streams/live/worker.py), against OpenCV's default pool.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice, product
from pathlib import Path

import cv2
import numpy as np

from detector.static_objects import StaticObjectStage, StaticParams
from detector.types import Detections, Frame
from models.samples import VTEST_AVI
from tests.support.nuisance import Night
from tests.support.scenes import video_frames

SAMPLES = 50
RUNS = 5


def _stage_at(commit: str):
    source = subprocess.run(
        ["git", "show", f"{commit}:detector/static_objects.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="sw-static-")) / "static_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("static_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["static_before"] = module
    spec.loader.exec_module(module)
    return module.StaticObjectStage, module.StaticParams


def _cpu_ms(stage_cls, params_cls, images: list[np.ndarray]) -> float:
    stage = stage_cls(params_cls(), 80, frozenset({0}), [], 10.0)
    started = time.process_time()
    for i, image in enumerate(images):
        stage.process(Frame("cam", i, i * 0.5, image), Detections.empty())
    return (time.process_time() - started) / len(images) * 1000


def main(commit: str) -> None:
    before = _stage_at(commit)
    day = list(islice(video_frames(VTEST_AVI), 0, SAMPLES * 5, 5))
    night = Night(0.3, 10, ir=False, iso=True, seed=1)
    lights = {"day": day, "night": [night(f, i * 0.5) for i, f in enumerate(day)]}
    for (light, frames), size in product(lights.items(), ((1920, 1080), (640, 360))):
        images = [cv2.resize(f, size) for f in frames]
        a, b, one = [], [], []
        pool = cv2.getNumThreads()
        for _ in range(RUNS):
            a.append(_cpu_ms(*before, images))
            b.append(_cpu_ms(StaticObjectStage, StaticParams, images))
            cv2.setNumThreads(1)
            one.append(_cpu_ms(StaticObjectStage, StaticParams, images))
            cv2.setNumThreads(pool)
        ma, mb, m1 = (statistics.median(x) for x in (a, b, one))
        print(
            f"{light}, {size[0]}x{size[1]}: {commit} {ma:.2f} ms CPU/sample, "
            f"this tree {mb:.2f} ms, ratio {mb / ma:.2f}; this tree on one OpenCV thread "
            f"{m1:.2f} ms, {m1 / mb:.2f}x its {pool}-thread pool's"
        )


if __name__ == "__main__":
    main(sys.argv[1])
