"""Section 2: where a frame's time goes, stage by stage, and the pipeline's overhead.

Each stage is timed alone on frames of the 1080p clip, in this process (median of several
runs); end to end is `score_camera`, the code `streetwatch score` runs, set against raw
`session.run` on the same model and input size, run the engine's way (as many concurrent
runs as it splits a batch into).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

from benchmarks.common import inference_ms, median_of, per_call_ms, table
from benchmarks.e2e import score_config
from detector.types import Frame
from streams.config import parse_config
from streams.evidence import EvidenceWriter
from streams.scoring import camera_pipeline, engine_for, score_camera, specs_for
from streams.sources import FileSource, Sampling

RAW_CALLS = 40  # per concurrent run: a few seconds, like the end-to-end pass it is set against
STAGE_FRAMES = 50  # frames held in memory for the per-stage timings (1080p BGR: 6 MB each)
EVERY_FRAME = Sampling(fps=120)  # above the clip's 25 fps


def _timed_ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1e3


def _decode_rows(clip: Path, runs: int) -> list[list[str]]:
    total = sum(1 for _ in FileSource("bench", clip, EVERY_FRAME).frames())
    every = median_of(
        runs, lambda: _timed_ms(lambda: list(FileSource("bench", clip, EVERY_FRAME).frames()))
    )
    keys = FileSource("bench", clip, Sampling(keyframes=True))
    key_ms = median_of(runs, lambda: _timed_ms(lambda: sum(1 for _ in keys.frames())))
    kept = sum(1 for _ in keys.frames())
    return [
        [
            "decode every frame (PyAV, threads, to BGR)",
            f"{every / total:.1f}",
            f"{total * 1e3 / every:.0f} frames/s",
        ],
        [
            f"decode keyframes only ({kept} of {total} frames)",
            f"{key_ms / kept:.1f} per keyframe",
            f"{total * 1e3 / key_ms:.0f} source frames/s",
        ],
    ]


def _end_to_end_fps(model: str, clip: Path) -> float:
    config = parse_config(score_config(model, clip))
    engine = engine_for(config)
    with tempfile.TemporaryDirectory() as tmp:
        result = score_camera(
            config.cameras[0], engine, config, specs_for(engine, config), EvidenceWriter(Path(tmp))
        )
    return result.frames / result.seconds


def _model_rows(
    label: str, model: str, clip: Path, frames: list[Frame], runs: int
) -> list[list[str]]:
    config = parse_config(score_config(model, clip))
    engine = engine_for(config)
    camera = config.cameras[0]
    specs = specs_for(engine, config)
    image = frames[0].image
    letterbox_ms = per_call_ms(lambda: engine.letterbox([image]), 20, runs)
    tensor = engine.letterbox([image])[0].copy()
    placements = engine.letterbox([image])[1]
    outputs = [engine.infer(engine.letterbox([f.image])[0]) for f in frames]
    post_ms = median_of(
        runs,
        lambda: _timed_ms(lambda: [engine.decode(o, placements) for o in outputs]) / len(outputs),
    )
    detections = [engine.decode(o, placements)[0] for o in outputs]

    def track_and_rules() -> None:
        pipeline = camera_pipeline(camera, specs, engine.class_names, camera.start_time)
        for frame, dets in zip(frames, detections, strict=True):
            pipeline.process(frame, dets)

    rules_ms = median_of(runs, lambda: _timed_ms(track_and_rules) / len(frames))
    # Raw and end to end back to back within each run, and their ratio taken per run: the
    # machine's speed drifts between runs more than the overhead being measured.
    pairs = [
        (inference_ms(engine, tensor, RAW_CALLS, 1), _end_to_end_fps(model, clip))
        for _ in range(runs)
    ]
    infer_ms = statistics.median(ms for ms, _ in pairs)
    e2e = statistics.median(fps for _, fps in pairs)
    share = statistics.median(fps * ms / 1e3 for ms, fps in pairs)
    raw = 1e3 / infer_ms
    w, h = engine.input_for(image.shape[1], image.shape[0])
    n = sum(len(d) for d in detections) / len(detections)
    return [
        [f"{label}: letterbox 1920x1080 -> {w}x{h}", f"{letterbox_ms:.2f}", ""],
        [
            f"{label}: inference (session.run, {engine.parallel_runs} concurrent runs)",
            f"{infer_ms:.1f}",
            f"{raw:.1f} frames/s raw",
        ],
        [f"{label}: post-processing (decode + NMS)", f"{post_ms:.2f}", f"{n:.1f} detections/frame"],
        [f"{label}: tracking + rules", f"{rules_ms:.2f}", ""],
        [
            f"{label}: **end to end** (`score_camera`, every frame)",
            f"{1e3 / e2e:.1f}",
            f"{e2e:.1f} frames/s = **{share:.0%} of raw inference** (median of per-run ratios)",
        ],
    ]


def run(clip: Path, runs: int, models: dict[str, str]) -> str:
    frames = list(islice(FileSource("bench", clip, EVERY_FRAME).frames(), STAGE_FRAMES))
    rows = _decode_rows(clip, runs)
    for label, model in models.items():
        rows += _model_rows(label, model, clip, frames, runs)
    return table(["stage", "ms per frame", "rate"], rows)
