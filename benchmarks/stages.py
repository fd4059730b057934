"""Section 2: where a frame's time goes, stage by stage, and the pipeline's overhead.

Each stage is timed alone on frames of the 1080p clip, in this process, in wall time and in
the process's CPU time (all its threads: OpenCV and ONNX Runtime use several). The per-camera
stages (tracking, static objects, rules) get the frames as samples `SAMPLE_STEP_S` apart, as
a live camera is sampled, so the static-object stage builds evidence and searches for objects
as in service. End to end is `score_camera`, the code `streetwatch score` runs, every zone
checking all three types, with the static-object stand-in off and on, set against raw
`session.run` on the same model and input size, run the engine's way (as many concurrent runs
as it splits a batch into).

The static stage's budget (issue #11) is 15% of the default model's inference CPU per sample.
In each run it is timed, on the 1080p samples and on the same samples at sub-stream size,
beside every model's inference and end-to-end passes; ratios are taken per run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import (
    ALL_CHECKS,
    STAND_IN_OFF,
    STAND_IN_OFF_YAML,
    STATIC_BUDGET,
    SUBSTREAM_SIZE,
    Cost,
    inference_cost,
    median_cost,
    per_call_cost,
    table,
)
from benchmarks.e2e import score_config
from detector.engine import Engine
from detector.pipeline import CameraPipeline, Labels
from detector.static_objects import StaticObjectStage
from detector.types import Detections, Frame
from streams.camera.engines import engine_for, labels_of
from streams.camera.evidence import EvidenceWriter
from streams.camera.runtime import CameraRuntime
from streams.config import Config, parse_config
from streams.offline.scoring import score_camera
from streams.sources.files import FileSource
from streams.sources.sampling import Sampling

RAW_CALLS = 40  # per concurrent run: a few seconds, like the end-to-end pass it is set against
STAGE_FRAMES = 50  # frames held in memory for the per-stage timings (1080p BGR: 6 MB each)
EVERY_FRAME = Sampling(fps=120)  # above the clip's 25 fps
# 2 samples/s: the 50 frames span 25 s of media time, well past the 6 s of evidence after
# which a region counts as static, so the stage's object search runs as in service.
SAMPLE_STEP_S = 0.5
STAGE_PASSES = 5  # passes over the samples per timing, each from a fresh camera state

Samples = list[tuple[Frame, Detections]]


@dataclass(frozen=True)
class Model:
    label: str
    model: str
    rect: bool = False


@dataclass
class _Setup:
    """One model's engine, its config and labels with the stand-in on and off, its raw
    outputs and detections on the samples (with the tracker's extras, as later stages get
    them), and the costs measured in the runs."""

    model: Model
    engine: Engine
    on: tuple[Config, Labels]
    off: tuple[Config, Labels]
    outputs: list[np.ndarray]
    samples: Samples
    infer: list[Cost] = field(default_factory=list)
    e2e_on: list[Cost] = field(default_factory=list)
    e2e_off: list[Cost] = field(default_factory=list)


def _config(model: Model, clip: Path, static: bool) -> Config:
    raw = score_config(model.model, clip, model.rect, ALL_CHECKS)
    return parse_config(raw if static else raw | STAND_IN_OFF)


def _pipeline(config: Config, labels: Labels) -> CameraPipeline:
    """A fresh camera pipeline, built by the runtime `score` and `run` use."""
    runtime = CameraRuntime(config.cameras[0], config, labels)
    start = config.cameras[0].start_time
    assert start is not None
    runtime.start(start)
    assert runtime.pipeline is not None
    return runtime.pipeline


def _static_stage(setup: _Setup) -> StaticObjectStage:
    static = _pipeline(*setup.on).static
    assert static is not None, "every zone checks garbage: the static stage must run"
    return static


def _setup(model: Model, clip: Path, frames: list[Frame]) -> _Setup:
    on, off = _config(model, clip, static=True), _config(model, clip, static=False)
    engine = engine_for(on)
    placements = engine.letterbox([frames[0].image])[1]
    outputs = [engine.infer(engine.letterbox([f.image])[0]) for f in frames]
    samples = [(f, engine.decode(o, placements)[0]) for f, o in zip(frames, outputs, strict=True)]
    labels_off = labels_of(engine, off)
    tracking = _pipeline(off, labels_off)
    for frame, dets in samples:
        tracking.observe(frame, dets)  # sets track_id and stationary on dets
    return _Setup(model, engine, (on, labels_of(engine, on)), (off, labels_off), outputs, samples)


def _substream(samples: Samples) -> Samples:
    """The same samples at sub-stream size, boxes scaled to match."""
    scale = samples[0][0].width / SUBSTREAM_SIZE[0]
    return [
        (
            replace(f, image=cv2.resize(f.image, SUBSTREAM_SIZE, interpolation=cv2.INTER_AREA)),
            Detections(d.boxes / scale, d.scores, d.class_ids, dict(d.data)),
        )
        for f, d in samples
    ]


def _per_sample(
    make: Callable[[], Callable[[Frame, Detections], object]], samples: Samples, runs: int
) -> Cost:
    """Cost per sample of a fresh camera state (`make()`) fed every sample, `STAGE_PASSES`
    passes per run, median over `runs`."""

    def one_pass() -> None:
        process = make()
        for frame, dets in samples:
            process(frame, dets)

    return per_call_cost(one_pass, STAGE_PASSES, runs) / len(samples)


def _end_to_end(engine: Engine, config: Config, labels: Labels) -> Cost:
    """`score_camera` over the clip, every frame: cost per frame (wall as it reports it)."""
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        result = score_camera(config.cameras[0], engine, config, labels, EvidenceWriter(Path(tmp)))
        cpu_ms = (time.process_time() - cpu) * 1e3
    return Cost(result.seconds * 1e3, cpu_ms) / result.frames


def _ratio(a: list[Cost], b: list[Cost], cpu: bool = True) -> float:
    """Median of the per-run ratios a / b, of CPU time or of wall time."""
    return statistics.median(
        x.cpu_ms / y.cpu_ms if cpu else x.wall_ms / y.wall_ms for x, y in zip(a, b, strict=True)
    )


def _row(name: str, cost: Cost, rate: str = "") -> list[str]:
    return [name, f"{cost.wall_ms:.2f}", f"{cost.cpu_ms:.2f}", rate]


def _decode_rows(clip: Path, runs: int) -> list[list[str]]:
    every = FileSource("bench", clip, EVERY_FRAME)
    keys = FileSource("bench", clip, Sampling(keyframes=True))
    total, kept = (sum(1 for _ in s.frames()) for s in (every, keys))
    all_cost = per_call_cost(lambda: list(every.frames()), 1, runs)
    key_cost = per_call_cost(lambda: sum(1 for _ in keys.frames()), 1, runs)
    return [
        _row(
            "decode every frame (PyAV, threads, to BGR)",
            all_cost / total,
            f"{total * 1e3 / all_cost.wall_ms:.0f} frames/s",
        ),
        _row(
            f"decode keyframes only ({kept} of {total} frames), per keyframe",
            key_cost / kept,
            f"{total * 1e3 / key_cost.wall_ms:.0f} source frames/s",
        ),
    ]


def _model_rows(s: _Setup, runs: int) -> list[list[str]]:
    label, engine = s.model.label, s.engine
    image = s.samples[0][0].image
    placements = engine.letterbox([image])[1]
    letterbox = per_call_cost(lambda: engine.letterbox([image]), 20, runs)
    post = per_call_cost(lambda: [engine.decode(o, placements) for o in s.outputs], 1, runs)
    track = _per_sample(lambda: _pipeline(*s.off).stages[0].process, s.samples, runs)
    plain = _per_sample(lambda: _pipeline(*s.off).process, s.samples, runs)
    static = _per_sample(lambda: _pipeline(*s.on).process, s.samples, runs)
    infer = median_cost(s.infer)
    w, h = engine.input_for(image.shape[1], image.shape[0])
    n = sum(len(d) for _, d in s.samples) / len(s.samples)

    def share(e2e: list[Cost]) -> str:
        # raw inference and end to end back to back within each run, their ratio per run: the
        # machine's speed drifts between runs more than the overhead being measured
        fps = 1e3 / median_cost(e2e).wall_ms
        return f"{fps:.1f} frames/s = **{_ratio(s.infer, e2e, cpu=False):.0%} of raw inference**"

    e2e = f"{label}: **end to end** (`score_camera`, every frame)"
    return [
        _row(f"{label}: letterbox 1920x1080 -> {w}x{h}", letterbox),
        _row(
            f"{label}: inference (session.run, {engine.parallel_runs} concurrent runs)",
            infer,
            f"{1e3 / infer.wall_ms:.1f} frames/s raw",
        ),
        _row(
            f"{label}: post-processing (decode + NMS)",
            post / len(s.outputs),
            f"{n:.1f} detections/frame",
        ),
        _row(f"{label}: tracking stage (track ids, stationary)", track),
        _row(f"{label}: tracking + rules, static stand-in off", plain),
        _row(f"{label}: tracking + static-object stage + rules", static),
        _row(f"{e2e}, static stand-in off", median_cost(s.e2e_off), share(s.e2e_off)),
        _row(
            f"{e2e}, static stage on",
            median_cost(s.e2e_on),
            f"{share(s.e2e_on)}; against stand-in off: {_ratio(s.e2e_off, s.e2e_on, cpu=False):.1%}"
            f" of its rate, CPU per frame {_ratio(s.e2e_on, s.e2e_off) - 1:+.1%}",
        ),
    ]


def run(clip: Path, runs: int, models: list[Model]) -> str:
    """The stage table; `models[0]` is the default model, the static stage's budget basis."""
    decoded = islice(FileSource("bench", clip, EVERY_FRAME).frames(), STAGE_FRAMES)
    frames = [replace(f, pts=i * SAMPLE_STEP_S) for i, f in enumerate(decoded)]
    setups = [_setup(m, clip, frames) for m in models]
    base = setups[0]  # the static stage sees the default model's detections
    sizes = {
        (frames[0].width, frames[0].height): base.samples,
        SUBSTREAM_SIZE: _substream(base.samples),
    }
    found = {
        size: sum(len(_static_stage(base).process(f, d)) for f, d in samples) / len(samples)
        for size, samples in sizes.items()
    }

    # Contenders take turns within each run; ratios are taken per run, then their median.
    static: dict[tuple[int, int], list[Cost]] = {size: [] for size in sizes}
    for _ in range(runs):
        for size, samples in sizes.items():
            static[size].append(_per_sample(lambda: _static_stage(base).process, samples, 1))
        for s in setups:
            tensor = s.engine.letterbox([frames[0].image])[0].copy()
            s.infer.append(inference_cost(s.engine, tensor, RAW_CALLS))
            s.e2e_off.append(_end_to_end(s.engine, *s.off))
            s.e2e_on.append(_end_to_end(s.engine, *s.on))

    rows = _decode_rows(clip, runs)
    width = base.on[0].detector.static_objects.width
    for size, costs in static.items():
        shares = [f"{_ratio(costs, s.infer):.1%} of {s.model.label} inference CPU" for s in setups]
        shares[0] = f"**{shares[0]}**"
        w, h = size
        rows.append(
            _row(
                f"static-object stage, {w}x{h} sample -> {width}x{round(h * width / w)} "
                f"({found[size]:.2f} static objects/sample)",
                median_cost(costs),
                ", ".join(shares),
            )
        )
    for s in setups:
        rows += _model_rows(s, runs)
    worst = max(_ratio(costs, base.infer) for costs in static.values())
    verdict = "met" if worst <= STATIC_BUDGET else "missed"
    header = ["stage", "wall ms per frame", "CPU ms per frame", "rate"]
    return (
        f"{table(header, rows)}\n\n**Static-object stage budget (<= {STATIC_BUDGET:.0%} of "
        f"the default model's inference CPU per sample): {verdict}**, at most {worst:.1%} "
        f"({base.model.label}, median of per-run ratios). CPU is this process's, all threads; "
        f"wall is elapsed time. Per-camera stages (tracking, static objects, rules) take the "
        f"first {len(frames)} frames as samples {SAMPLE_STEP_S:g} s apart ({STAGE_PASSES} "
        f"passes per run, each from a fresh camera); the 640x360 rows are the same samples "
        f"scaled down, as a sub-stream sends them; the static stage sees {base.model.label}'s "
        f"detections. End to end: every zone checks {', '.join(ALL_CHECKS)}; stand-in off is "
        f"`{STAND_IN_OFF_YAML}`."
    )
