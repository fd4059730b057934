"""Section 11: the plate stage's CPU per read and de-identification's per evidence image,
beside the default model's inference per sample (issue #25).

The plate reader runs on a vehicle's crop (what the stage reads on each sample of a confirmed
parking site) and on a whole photo (the main stream's frame), both the real bus photo with a
RENDERED Chinese plate on the bus (tests/detector/plate_render.py: no photographs of Chinese
plates ship in any package we may use). De-identification runs on frames of the benchmark's
1080p street clip with the default model's person boxes, heads only and heads plus plates (the
plate detector on the whole frame). The default model's inference is timed on the same frames
through the engine, the cost every sample pays.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import cv2

from benchmarks.common import Cost, median_cost, per_call_cost, table, timed
from detector.deidentify import Deidentifier
from detector.engine import Engine
from detector.plates import PlateReader
from models.plates import fetch_plates
from models.samples import sample_path
from streams.sources.files import FileSource
from streams.sources.sampling import Sampling
from tests.detector.plate_render import place_plate, render_plate

FRAMES = 8
REPEAT = 5
BUS_BODY = (430, 640)  # where the plate goes: the bus's side panel
VEHICLE = (20, 220, 800, 780)  # the bus's box on bus.jpg, xyxy


def _row(what: str, cost: Cost, base: Cost) -> list[object]:
    return [what, f"{cost.wall_ms:.1f}", f"{cost.cpu_ms:.1f}", f"{cost.cpu_ms / base.cpu_ms:.2f}x"]


def run(clip: Path, runs: int) -> str:
    fetch_plates()
    reader = PlateReader()
    engine = Engine("default", parallel_runs=1)
    bus = cv2.imread(str(sample_path("bus.jpg")))
    photo, _ = place_plate(bus, render_plate("京A12345"), BUS_BODY, 200)
    x1, y1, x2, y2 = VEHICLE
    crop = photo[y1:y2, x1:x2]
    assert [r.text for r in reader.read(crop) if r.text] == ["京A12345"]

    source = FileSource("bench", clip, Sampling(fps=1))
    frames = [f.image for f in islice(source.frames(), FRAMES)]
    people = [d.boxes[d.class_ids == 0] for d in engine.detect(frames)]  # COCO 0: person

    def each_frame(fn) -> Cost:
        pairs = list(zip(frames, people, strict=True))
        return median_cost(
            [timed(lambda: [fn(f, p) for f, p in pairs]) / FRAMES for _ in range(runs)]
        )

    inference = each_frame(lambda f, _: engine.detect_one(f))
    heads = Deidentifier()
    with_plates = Deidentifier(reader)
    on_crop = per_call_cost(lambda: reader.read(crop), REPEAT, runs)
    on_photo = per_call_cost(lambda: reader.read(photo), REPEAT, runs)
    rows = [
        _row("default model inference, 1080p sample", inference, inference),
        _row("plate read, vehicle crop 780x560", on_crop, inference),
        _row("plate read, whole photo 810x1080", on_photo, inference),
        _row("de-identify 1080p, heads", each_frame(heads), inference),
        _row("de-identify 1080p, heads + plates", each_frame(with_plates), inference),
    ]
    counts = [len(p) for p in people]
    return (
        table(["per call", "wall ms", "CPU ms", "CPU vs inference"], rows)
        + f"\n\nPlate reads: the bus photo with a rendered plate, read exactly each time. "
        f"De-identification: {FRAMES} frames of the clip at 1 fps, {min(counts)} to "
        f"{max(counts)} people each. The plate stage runs per confirmed parking incident "
        "(one read per sample of its dwell), de-identification once per evidence image."
    )
