"""Section 10: what shadow mode costs the live worker (issue #16).

The worker's per-sample work (streams.live.worker: the batch through `ModelSet.gate`, inference,
each camera's runtime) on the same decoded frames of recorded footage, with a shadow model
(`Shadow.observe`, which the shadow sink runs on each settled batch) off and on, the default model
as both live and candidate. Decoding is done once beforehand and not counted: it is the same
with or without a shadow, so the ratio here is the most a shadow can add to a worker.
Off and on take turns within each run; the median of the per-run ratios is reported.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from benchmarks.common import machine, table
from detector.types import Frame
from streams.camera.model_set import ModelSet
from streams.camera.runtime import CameraRuntime
from streams.config import Config, parse_config
from streams.live.shadow import Shadow
from streams.sources.files import FileSource
from streams.sources.sampling import Sampling

CAMERAS = 4  # one batch holds a sample of each, as the worker's would
SAMPLE_FPS = 2.0
EPOCH = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _config(clip: Path, shadow: bool) -> Config:
    zone = {"id": "street", "polygon": [[0, 0], [1920, 0], [1920, 1080], [0, 1080]],
            "checks": ["illegal_parking"]}  # fmt: skip
    cameras = [{"id": f"cam-{i}", "source": str(clip), "sample": {"fps": SAMPLE_FPS},
                "zones": [zone]} for i in range(CAMERAS)]  # fmt: skip
    body: dict = {"model": "default", "cameras": cameras}
    if shadow:
        body["shadow"] = {"model": "default"}
    return parse_config(body)


def _pass(config: Config, models: ModelSet, frames: list, shadow: Shadow | None) -> tuple:
    """CPU and wall seconds of the worker's work on every frame, on every camera."""
    runtimes = {c.id: CameraRuntime(c, config, models.of(c).labels) for c in config.cameras}
    for runtime in runtimes.values():
        runtime.start(EPOCH)
    cpu, wall = time.process_time(), time.perf_counter()
    for frame in frames:
        samples = [(c, Frame(c.id, frame.index, frame.pts, frame.image)) for c in config.cameras]
        gated = models.gate([(c, f, runtimes[c.id].gate) for c, f in samples])
        found = gated.settle(gated.infer(lambda e, images: e.detect(images) if images else []))
        for (camera, f), dets in zip(samples, found, strict=True):
            runtimes[camera.id].process(f, dets)
        if shadow is not None:
            shadow.observe([(c, f, runtimes[c.id].epoch) for c, f in samples])
    return time.process_time() - cpu, time.perf_counter() - wall


def run(clip: Path, runs: int) -> str:
    off, on = _config(clip, False), _config(clip, True)
    models = ModelSet(off, off.cameras)
    shadow = Shadow(on, CollectorRegistry())
    frames = list(FileSource("bench", str(clip), Sampling(fps=SAMPLE_FPS)).frames())
    samples = len(frames) * CAMERAS
    _pass(off, models, frames[:2], shadow)  # warm both engines up
    measured: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    for _ in range(runs):
        measured["off"].append(_pass(off, models, frames, None))
        measured["on"].append(_pass(off, models, frames, shadow))
    pairs = list(zip(measured["off"], measured["on"], strict=True))
    cpu_ratio = statistics.median(n[0] / f[0] for f, n in pairs)
    wall_ratio = statistics.median(n[1] / f[1] for f, n in pairs)
    rows = []
    for name, ratio_cpu, ratio_wall in (("off", 1.0, 1.0), ("on", cpu_ratio, wall_ratio)):
        cpu = statistics.median(m[0] for m in measured[name])
        wall = statistics.median(m[1] for m in measured[name])
        rows.append([f"shadow {name}", f"{1000 * cpu / samples:.1f}", f"{ratio_cpu:.2f}x",
                     f"{samples / wall:.1f}", f"{1 / ratio_wall:.2f}x"])  # fmt: skip
    head = ["worker", "CPU ms / sample", "vs off", "samples/s", "vs off"]
    return (
        f"{table(head, rows)}\n\n{CAMERAS} cameras of the same clip, {len(frames)} samples each "
        f"at {SAMPLE_FPS:g} fps ({samples} a pass), one batch of {CAMERAS} per frame; a "
        f"parking zone over the whole picture. Machine: {machine()}. Input: {clip.name}. "
        f"Median of {runs} runs, off and on taking turns."
    )
