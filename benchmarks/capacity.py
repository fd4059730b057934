"""Section 4: how many 1080p cameras one worker keeps up with (and section 4b: how many when
the worker watches the cameras' 640x360 sub-streams instead).

N loopback RTSP cameras serve the clip (25 fps, a keyframe every 2 s) pass-through,
niced, their keyframes spread over one GOP in groups (real cameras are not in step; see
live.cameras). `streetwatch run`
watches them with the recommended live settings (live.RECOMMENDED, keyframes only) and posts
to a real intake server. After a warm-up, scrapes of its /metrics over a window give, per
camera, samples processed against the window / 2 s expected, and the lag gauge (the maximum
over scrapes a second apart); /proc gives the CPU of the worker and of the server with its
ffmpegs. A step passes when every camera has >= 95% of its expected samples and no lag
reached 2 s. Steps go up until one fails, then bisect down to a gap of 4 cameras. Every zone
checks all three types, so the static-object stage runs; at the largest passing count (or a
given one) the worker's CPU per camera-second is then measured with the stand-in on and off,
taking turns, for what the stage costs in capacity (issue #11's budget: at most 15%).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (
    KEYINT_S,
    ROOT,
    STAND_IN_OFF,
    STAND_IN_OFF_YAML,
    STATIC_BUDGET,
    checkout,
    clip_size,
    table,
)
from benchmarks.inference import INT8
from benchmarks.live import (
    RECOMMENDED_DETECTOR,
    Scrape,
    camera_config,
    cameras,
    cpu_seconds,
    describe,
    group_cpu_seconds,
    intake,
    live_worker,
    tree_cpu_seconds,
)
from detector.calibration import agreement, spread_frames
from detector.engine import Engine, available_cores
from detector.types import Detections
from streams.sources.rtsp import RtspSource
from streams.sources.sampling import SamplePlan, Sampling

KEYFRAMES = Sampling(keyframes=True)

AGREEMENT_FRAMES = 60
MIN_SHARE_PCT = 95.0
MAX_LAG_S = 2.0
STEPS = (8, 16, 32, 64, 96, 128, 160, 192, 256)  # past the aims (128 at 1080p, 256 sub-streams)
BISECT_TO = 4
SCRAPE_EVERY_S = 1.0
STEADY_WITHIN_S = 60.0  # the most the warm-up is extended for the stretch to return to 1


@dataclass(frozen=True)
class Step:
    cameras: int
    processed_pct: list[float]  # per camera, of the samples the window should hold
    produced_pct: list[float]  # keyframes decoded and offered to the loop, same scale
    max_lag_s: float
    worker_cores: float
    server_cores: float
    mean_batch: float
    inference_ms: float  # per batched call
    asked_pct: list[float]  # per camera, processed of the samples its plan took
    max_stretch: float  # the worker's overload factor, highest scrape
    adaptive: bool
    # Worker CPU per camera-second (ms) by its threads' role, from its own metrics (empty
    # for a revision without them); its processes' children (ffmpeg receivers) are not in it.
    roles_ms: dict[str, float] = field(default_factory=dict)

    @property
    def worker_ms(self) -> float:
        """Worker CPU per camera-second, in milliseconds."""
        return self.worker_cores * 1e3 / self.cameras

    @property
    def passed(self) -> bool:
        """Every camera got >= 95% of the samples its plan asked for (at a fixed rate: of
        every keyframe), none shed for overload, lag under 2 s."""
        fixed_ok = self.adaptive or min(self.processed_pct) >= MIN_SHARE_PCT
        return (
            fixed_ok
            and min(self.asked_pct) >= MIN_SHARE_PCT
            and self.max_stretch <= 1.0
            and self.max_lag_s < MAX_LAG_S
        )

    def row(self) -> list[object]:
        return [
            self.cameras,
            f"{min(self.processed_pct):.0f} / {statistics.median(self.processed_pct):.0f}",
            f"{min(self.produced_pct):.0f}",
            f"{min(self.asked_pct):.0f}",
            f"{self.max_stretch:.2f}",
            f"{self.max_lag_s:.2f}",
            f"{self.worker_cores:.2f}",
            f"{self.server_cores:.2f}",
            f"{self.mean_batch:.1f}",
            f"{self.inference_ms:.0f}",
            "pass" if self.passed else "**fail**",
        ]


HEADER = [
    "cameras",
    "samples processed, min / median % of expected",
    "samples produced, min %",
    "processed of asked, min %",
    "max stretch",
    "max lag s",
    "worker CPU (cores)",
    "server CPU (cores)",
    "mean batch",
    "ms per batch",
    "verdict",
]


def _delta(first: Scrape, last: Scrape, metric: str) -> dict[str, float]:
    before = first.per_camera(metric)
    return {cam: v - before.get(cam, 0.0) for cam, v in last.per_camera(metric).items()}


def _mean(first: Scrape, last: Scrape, histogram: str) -> float:
    count = last.total(f"{histogram}_count") - first.total(f"{histogram}_count")
    total = last.total(f"{histogram}_sum") - first.total(f"{histogram}_sum")
    return total / count if count else 0.0


@dataclass(frozen=True)
class Mode:
    """How the cameras are sampled and what their zone covers."""

    name: str
    sample: dict[str, object]
    top: float = 0.0  # the zone starts this share of the frame down


FIXED = Mode("fixed, every keyframe (before)", {"keyframes": True, "adaptive": False})
# The clip's van and car stand in its upper third: a zone covering the whole frame has an
# open site on every camera all the time, one below them has only passers-by.
BUSY = Mode("adaptive, a site open (whole frame)", {"keyframes": True})
QUIET = Mode("adaptive, quiet street (lower half)", {"keyframes": True}, top=0.5)
LONE = Mode("1080p, every frame, fixed rate", {"fps": 25, "adaptive": False})


def measure(
    clip: Path,
    count: int,
    api: tuple[str, str],
    warmup_s: float,
    window_s: float,
    extra: dict | None = None,
    mode: Mode = FIXED,
    cpus: set[int] | None = None,
    code: Path = ROOT,
) -> Step:
    """One step: `count` cameras, a fresh server and worker (with `extra` settings, on
    `cpus`, default every core, run from the source tree `code`)."""
    with cameras(clip, count, KEYINT_S) as (server, urls):
        assert server.process is not None
        pgid = server.process.pid
        size = clip_size(clip)
        configs = [
            camera_config(f"cam-{i:03d}", url, mode.sample, size, mode.top)
            for i, url in enumerate(urls)
        ]
        with live_worker(api, configs, extra, cpus, code) as worker:
            worker.wait_all_processing(count, timeout_s=60 + count)
            time.sleep(warmup_s)
            # Starting every camera at once is a burst the worker sheds; measure once over.
            deadline = time.monotonic() + STEADY_WITHIN_S
            while (
                worker.metrics().highest("streetwatch_sample_stretch") > 1.0
                and time.monotonic() < deadline
            ):
                time.sleep(SCRAPE_EVERY_S)
            first = worker.metrics()
            cpu_before = tree_cpu_seconds(worker.pid), group_cpu_seconds(pgid)
            max_lag, max_stretch, last = 0.0, 1.0, first
            while last.at - first.at < window_s:
                time.sleep(SCRAPE_EVERY_S)
                last = worker.metrics()
                max_lag = max(max_lag, *last.per_camera("streetwatch_lag_seconds").values())
                max_stretch = max(max_stretch, last.highest("streetwatch_sample_stretch"))
            cpu_after = tree_cpu_seconds(worker.pid), group_cpu_seconds(pgid)
            time.sleep(SCRAPE_EVERY_S)
            after = worker.metrics()
    seconds = last.at - first.at
    expected = seconds / KEYINT_S
    processed = _delta(first, last, "streetwatch_samples_processed_total")
    produced = _delta(first, last, "streetwatch_samples_produced_total")
    settled = _delta(first, after, "streetwatch_samples_processed_total")
    return Step(
        cameras=count,
        processed_pct=[processed.get(c["id"], 0.0) / expected * 100 for c in configs],
        produced_pct=[produced.get(c["id"], 0.0) / expected * 100 for c in configs],
        max_lag_s=max_lag,
        worker_cores=(cpu_after[0] - cpu_before[0]) / seconds,
        server_cores=(cpu_after[1] - cpu_before[1]) / seconds,
        mean_batch=_mean(first, last, "streetwatch_batch_size"),
        inference_ms=_mean(first, last, "streetwatch_inference_seconds") * 1e3,
        # A sample produced just before the last scrape is processed just after it (a few
        # samples per window at 6 s apart): processed ones are counted to a scrape later.
        asked_pct=[
            settled.get(c["id"], 0.0) / max(produced.get(c["id"], 0.0), 1.0) * 100 for c in configs
        ],
        max_stretch=max_stretch,
        adaptive=mode.sample.get("adaptive", True) is not False,
        roles_ms={
            role: (cpu - first.thread_cpu_s.get(role, 0.0)) / seconds / count * 1e3
            for role, cpu in last.thread_cpu_s.items()
        },
    )


def _largest(
    clip: Path,
    api: tuple[str, str],
    warmup_s: float,
    window_s: float,
    steps: tuple[int, ...],
    mode: Mode = FIXED,
    extra: dict | None = None,
    cpus: set[int] | None = None,
) -> tuple[list[Step], int]:
    """Every step measured, by camera count, and the largest count passing (0 if none)."""
    results: list[Step] = []
    best, failed = 0, None

    def step(count: int) -> bool:
        try:
            result = measure(clip, count, api, warmup_s, window_s, extra, mode, cpus)
        except RuntimeError as exc:
            # The loopback rig, not the worker, can fail under overload (GStreamer's RTSP
            # server has aborted on a slow client's backlog): the step is measured once more.
            print(f"capacity: {count} cameras: failed ({str(exc).splitlines()[0]}); again")
            result = measure(clip, count, api, warmup_s, window_s, extra, mode, cpus)
        results.append(result)
        print(f"capacity: {count} cameras: {' | '.join(map(str, result.row()))}", flush=True)
        return result.passed

    for count in steps:
        if not step(count):
            failed = count
            break
        best = count
    while failed is not None and failed - best > BISECT_TO:
        middle = (best + failed) // 2
        if step(middle):
            best = middle
        else:
            failed = middle
    return sorted(results, key=lambda r: r.cameras), best


def _search(
    clip: Path,
    api: tuple[str, str],
    warmup_s: float,
    window_s: float,
    steps: tuple[int, ...],
    mode: Mode = FIXED,
) -> tuple[str, int]:
    """The capacity table and the largest count passing (0 if none)."""
    results, best = _largest(clip, api, warmup_s, window_s, steps, mode)
    rows = [r.row() for r in results]
    verdict = f"**Largest N passing: {best}**" if best else "**No N passed**"
    alone = ""
    if best:
        at_best = next(r for r in results if r.cameras == best)
        cores = available_cores()
        alone = (
            f" Worker CPU alone (the cameras' serving cost taken out, as with real cameras): "
            f"{at_best.worker_ms:.1f} ms per camera-second at {best} cameras, so its "
            f"{cores} cores hold ~{cores * 1e3 / at_best.worker_ms:.0f} cameras."
        )
    return (
        f"{table(HEADER, rows)}\n\n{verdict} ({mode.name}; every camera >= "
        f"{MIN_SHARE_PCT:g}% of the samples asked for, none shed, lag < {MAX_LAG_S:g} s), "
        f"steps {', '.join(map(str, steps))} until the first failure, then bisected to "
        f"{BISECT_TO}.{alone} {_protocol(warmup_s, window_s)}",
        best,
    )


SCALING_HEADER = [
    "layout",
    "largest N passing",
    "worker cores at N",
    "worker CPU per camera-second at N, ms",
    "N against the first layout",
]


def layouts() -> list[tuple[str, int, set[int] | None]]:
    """What the scaling section compares: one process pinned to one core (`taskset -c`),
    one process on every core, a process per core (`worker.processes`)."""
    cores = sorted(os.sched_getaffinity(0))
    return [
        (f"1 process on core {cores[0]} (`taskset -c {cores[0]}`)", 1, {cores[0]}),
        (f"1 process on {len(cores)} cores", 1, None),
        (f"{len(cores)} processes on {len(cores)} cores", len(cores), None),
    ]


def scaling(
    clip: Path,
    warmup_s: float,
    window_s: float,
    steps: tuple[int, ...] = STEPS,
    pinned: bool = True,
) -> str:
    """Section 4e: the capacity search of 4c for each layout, side by side in one run (without
    the one-core layout if not `pinned`: the every-core searches continued past a step)."""
    rows: list[list[object]] = []
    first = 0
    with intake() as api:
        for name, processes, cpus in layouts()[0 if pinned else 1 :]:
            extra = {"worker": {"processes": processes}}
            results, best = _largest(clip, api, warmup_s, window_s, steps, FIXED, extra, cpus)
            first = first or best
            at_best = next((r for r in results if r.cameras == best), None)
            rows.append(
                [
                    name,
                    best,
                    f"{at_best.worker_cores:.2f}" if at_best else "-",
                    f"{at_best.worker_ms:.1f}" if at_best else "-",
                    f"{best / first:.2f}x" if first else "-",
                ]
            )
    return (
        f"{table(SCALING_HEADER, rows)}\n\nEach layout: the search of section 4c ({FIXED.name}; "
        f"every camera >= {MIN_SHARE_PCT:g}% of the samples asked for, none shed, lag < "
        f"{MAX_LAG_S:g} s), the worker (with its processes) pinned where the layout says, "
        f"the cameras on every core; worker CPU is the supervisor's and its processes'. "
        f"{_protocol(warmup_s, window_s)}"
    )


def settings_at(
    clips: dict[str, tuple[Path, int]],
    api: tuple[str, str],
    settings: dict[str, dict],
    runs: int,
    warmup_s: float,
    window_s: float,
) -> str:
    """Per clip, at its camera count, the worker run with each of `settings` (named config
    additions, taking turns, `runs` rounds) on a quiet street."""
    header = [
        "stream",
        "cameras",
        "worker",
        "verdict (runs)",
        "worker CPU ms per camera-second",
        "max lag s",
        "max stretch",
        "processed of asked, min %",
        "of which receive / inference / loop / the rest",
    ]
    rows = []
    for label, (clip, count) in clips.items():
        steps: dict[str, list[Step]] = {name: [] for name in settings}
        for _ in range(runs):
            for name, extra in settings.items():
                step = measure(clip, count, api, warmup_s, window_s, extra, QUIET)
                steps[name].append(step)
                print(f"settings: {label} x{count}, {name}: {' | '.join(map(str, step.row()))}")
        for name, taken in steps.items():
            rows.append(
                [
                    label,
                    count,
                    name,
                    " / ".join("pass" if s.passed else "**fail**" for s in taken),
                    " / ".join(f"{s.worker_ms:.1f}" for s in taken),
                    " / ".join(f"{s.max_lag_s:.2f}" for s in taken),
                    " / ".join(f"{s.max_stretch:.2f}" for s in taken),
                    f"{min(min(s.asked_pct) for s in taken):.0f}",
                    "; ".join(_by_role(s) for s in taken),
                ]
            )
    settings_text = "; ".join(f"{name}: `{extra}`" for name, extra in settings.items())
    return (
        f"{table(header, rows)}\n\n{QUIET.name}, the workers ({settings_text}) taking turns "
        f"({runs} rounds). {_protocol(warmup_s, window_s)}"
    )


def sampling_costs(
    clips: dict[str, Path], count: int, api: tuple[str, str], warmup_s: float, window_s: float
) -> str:
    """Worker CPU per camera-second at `count` cameras, per clip, for each sampling mode."""
    header = [
        "stream",
        "sampling",
        "worker CPU ms per camera-second",
        "samples per camera-minute",
        "processed of asked, min %",
        "max lag s",
        "max stretch",
        "of which receive / inference / loop / the rest",
    ]
    rows = []
    for label, clip in clips.items():
        for mode in (FIXED, QUIET, BUSY):
            step = measure(clip, count, api, warmup_s, window_s, mode=mode)
            print(f"sampling: {label} {mode.name}: {step.worker_ms:.1f} ms", flush=True)
            per_minute = statistics.median(step.produced_pct) * (60 / KEYINT_S) / 100
            rows.append(
                [
                    label,
                    mode.name,
                    f"**{step.worker_ms:.1f}**",
                    f"{per_minute:.1f}",
                    f"{min(step.asked_pct):.0f}",
                    f"{step.max_lag_s:.2f}",
                    f"{step.max_stretch:.2f}",
                    _by_role(step),
                ]
            )
    main_clip = next(iter(clips.values()))
    receive_ms = receive_cost(main_clip, count, window_s)
    lone = measure(main_clip, 1, api, warmup_s, window_s, mode=LONE)
    lone_text = (
        f"**A lone camera sampled fast** ({LONE.name}): the worker used "
        f"{lone.worker_cores:.2f} of {available_cores()} cores, processed "
        f"{min(lone.asked_pct):.0f}% of the samples asked for, lag up to {lone.max_lag_s:.2f} s, "
        f"{lone.inference_ms:.0f} ms per batch of {lone.mean_batch:.1f}."
    )
    receive_text = (
        f"**Receiving alone** (RTSP over TCP, RTP depacketising, H.264 parsing of 25 frames/s, "
        f"the Python loop over packets; no keyframe decoded: {count} sources in one process, "
        f"their plans idle): {receive_ms:.2f} ms of CPU per camera-second."
    )
    roles_text = (
        "Receive, inference, loop: the worker's CPU by what its threads do, from its own "
        "`streetwatch_thread_cpu_seconds_total` (a camera's receiving and decoding thread; "
        "the batches' inference; the loop's scheduling and each sample's tracking, static "
        "stage and rules); the rest is the writers, the metrics and health servers and "
        "threads Python did not start."
    )
    return (
        f"{table(header, rows)}\n\n{count} cameras per run. {_protocol(warmup_s, window_s)}"
        f"\n\n{roles_text}\n\n{receive_text}\n\n{lone_text}"
    )


def _by_role(step: Step) -> str:
    """The worker's CPU per camera-second by its threads' role (streams/live/metrics.py)."""
    named = [step.roles_ms.get(role, 0.0) for role in ("receive", "inference", "loop")]
    rest = sum(step.roles_ms.values()) - sum(named)
    return " / ".join(f"{ms:.1f}" for ms in (*named, rest))


def revisions(
    clips: dict[str, Path],
    count: int,
    api: tuple[str, str],
    rev: str,
    runs: int,
    warmup_s: float,
    window_s: float,
) -> str:
    """Worker CPU per camera-second at `count` cameras on a quiet street (the recommended
    settings), the worker of git revision `rev` and this tree's taking turns, per clip."""
    trees = ((f"`{rev}`", checkout(rev)), ("now", ROOT))
    header = [
        "stream",
        "worker",
        "worker CPU ms per camera-second (median)",
        "runs",
        "processed of asked, min %",
        "max lag s",
        "now against it (median of per-run ratios)",
    ]
    rows = []
    for label, clip in clips.items():
        steps: dict[str, list[Step]] = {name: [] for name, _ in trees}
        for i in range(runs):
            for name, code in trees:
                step = measure(clip, count, api, warmup_s, window_s, mode=QUIET, code=code)
                steps[name].append(step)
                print(f"revisions: {label} {name} run {i + 1}: {step.worker_ms:.1f} ms", flush=True)
        then, now = (steps[name] for name, _ in trees)
        ratio = statistics.median(n.worker_ms / t.worker_ms for t, n in zip(then, now, strict=True))
        for name, _ in trees:
            taken = steps[name]
            rows.append(
                [
                    label,
                    name,
                    f"**{statistics.median(s.worker_ms for s in taken):.1f}**",
                    " / ".join(f"{s.worker_ms:.1f}" for s in taken),
                    f"{min(min(s.asked_pct) for s in taken):.0f}",
                    f"{max(s.max_lag_s for s in taken):.2f}",
                    f"{ratio:.2f}x" if name == "now" else "",
                ]
            )
    return (
        f"{table(header, rows)}\n\n{count} cameras per run, {QUIET.name}, the two workers "
        f"taking turns ({runs} runs each); the other revision runs from `git archive`'s tree "
        f"with this tree's benchmark, cameras and intake server. {_protocol(warmup_s, window_s)}"
    )


LONE_RUNS = (
    ("int8, rect", {}),
    ("fp32, rect", {"model": "default"}),
    (
        "fp32, rect, one run at a time",
        {"model": "default", "detector": {**RECOMMENDED_DETECTOR, "parallel_runs": 1}},
    ),
)


def lone_camera(clip: Path, api: tuple[str, str], warmup_s: float, window_s: float) -> str:
    """One 1080p camera decoding and inferring every frame (25 a second): how much of the
    machine the pipelined loop puts to work for it, and how many frames it keeps up with."""
    rows = []
    for label, extra in LONE_RUNS:
        step = measure(clip, 1, api, warmup_s, window_s, extra=extra, mode=LONE)
        rows.append(
            [
                label,
                f"**{step.worker_cores:.2f}**",
                f"{step.processed_pct[0] / 100 / KEYINT_S:.1f}",
                f"{min(step.asked_pct):.0f}",
                f"{step.max_lag_s:.2f}",
                f"{step.mean_batch:.1f}",
                f"{step.inference_ms:.0f}",
            ]
        )
    header = [
        "model",
        f"worker CPU (cores of {available_cores()})",
        "frames processed per second (of 25)",
        "processed of decoded, %",
        "max lag s",
        "mean batch",
        "ms per batch",
    ]
    return (
        f"{table(header, rows)}\n\nOne camera, every frame decoded and sampled (`sample: "
        f"{{fps: 25, adaptive: false}}`), `detector: {{rect: true}}` on each model; the last "
        f"row pins the engine to one batch in flight (`parallel_runs: 1`, its "
        f"ONNX session then using every core within each run). {_protocol(warmup_s, window_s)}"
    )


def receive_cost(
    clip: Path, count: int, window_s: float, receiver: type[RtspSource] = RtspSource
) -> float:
    """CPU per camera-second of `count` sources of the `receiver` class that decode nothing
    after their first keyframe (plans asking for no sample): what receiving costs."""
    never = 1e9
    with cameras(clip, count, KEYINT_S) as (_, urls):
        sources = [
            receiver(f"cam-{i:03d}", url, KEYFRAMES, plan=SamplePlan(KEYFRAMES))
            for i, url in enumerate(urls)
        ]
        for source in sources:
            source.start()
        try:
            for source in sources:
                if source.latest(timeout=30.0) is None:
                    raise RuntimeError(f"{source.camera_id}: no picture within 30 s")
                source.plan.settle(never)
            time.sleep(KEYINT_S)
            started, cpu = time.monotonic(), cpu_seconds(os.getpid())
            time.sleep(window_s)
            seconds = time.monotonic() - started
            used = cpu_seconds(os.getpid()) - cpu
        finally:
            for source in sources:
                source.stop(wait=False)
            for source in sources:
                source.stop()
    return used / seconds * 1e3 / count


def _protocol(warmup_s: float, window_s: float) -> str:
    return (
        f"Each step: a fresh server and worker, every zone checking all three types, "
        f"{warmup_s:g} s warm-up after every camera's first sample (extended, up to "
        f"{STEADY_WITHIN_S:g} s, until the worker has stopped shedding the start-up burst: "
        f"stretch back at 1), then {window_s:g} s "
        f"measured (expected samples = window / {KEYINT_S:g} s; lag = the worker's "
        f"capture-to-inference gauge, maximum over scrapes {SCRAPE_EVERY_S:g} s apart; CPU "
        f"from /proc, in cores of {available_cores()}, the server's including its ffmpegs)."
    )


def _compare(
    clip: Path, count: int, api: tuple[str, str], runs: int, warmup_s: float, window_s: float
) -> str:
    """Worker CPU per camera-second at `count` cameras, static stand-in on and off in turn."""
    pairs = []
    for i in range(runs):
        on = measure(clip, count, api, warmup_s, window_s)
        off = measure(clip, count, api, warmup_s, window_s, STAND_IN_OFF)
        print(f"capacity: {count} cameras, run {i + 1}: {on.worker_ms:.1f} / {off.worker_ms:.1f}")
        pairs.append((on, off))
    # Per run, on against the off turn beside it: the shared machine drifts between runs.
    ratio = statistics.median(on.worker_ms / off.worker_ms for on, off in pairs)
    per_sample = statistics.median((on.worker_ms - off.worker_ms) * KEYINT_S for on, off in pairs)
    rows = []
    for name, side in (("on (default)", 0), ("off", 1)):
        steps = [pair[side] for pair in pairs]
        rows.append(
            [
                name,
                f"**{statistics.median(s.worker_ms for s in steps):.1f}**",
                " / ".join(f"{s.worker_ms:.1f}" for s in steps),
                f"{min(min(s.processed_pct) for s in steps):.0f}",
                f"{max(s.max_lag_s for s in steps):.2f}",
                f"{statistics.median(s.inference_ms for s in steps):.0f}",
            ]
        )
    header = [
        "static stand-in",
        "worker CPU ms per camera-second (median)",
        "runs",
        "samples processed, min %",
        "max lag s",
        "ms per batch",
    ]
    fall = 1 - 1 / ratio  # of a CPU-bound worker's cameras
    verdict = "within" if fall <= STATIC_BUDGET else "over"
    return (
        f"{table(header, rows)}\n\n**Static stage at {count} cameras: worker CPU "
        f"{ratio - 1:+.1%} against the stand-in off** (median of per-run ratios, {runs} runs, "
        f"on and off taking turns), ~{per_sample:.1f} ms per sample (one every {KEYINT_S:g} s), "
        f"so a CPU-bound worker's capacity changes by {-fall:+.1%}: {verdict} the "
        f"{STATIC_BUDGET:.0%} budget. Off is `{STAND_IN_OFF_YAML}`. "
        f"{_protocol(warmup_s, window_s)}"
    )


def run(
    clip: Path,
    warmup_s: float,
    window_s: float,
    steps: tuple[int, ...] = STEPS,
    main_clip: Path | None = None,
    cameras: int | None = None,
    runs: int = 3,
    mode: Mode = FIXED,
) -> dict[str, str]:
    """Section bodies for cameras serving `clip`: "search", the capacity table (left out when
    `cameras` is given), and "static", the static stage's cost at `cameras` or at the largest
    count passing. With `main_clip`, `clip` is its sub-stream and the text says how far
    detections on the two agree."""
    how = describe(clip)
    if main_clip is not None:
        share = substream_agreement(main_clip, clip)
        w, h = clip_size(main_clip)
        how = (
            f"Detections on the sub-stream agree {share:.1%} with those on the {w}x{h} main "
            f"stream (the worker's model and input, {AGREEMENT_FRAMES} frames spread over both "
            f"clips; same class, IoU >= 0.5).\n\n{how}"
        )
    bodies = {}
    with intake() as api:
        if cameras is None:
            text, cameras = _search(clip, api, warmup_s, window_s, steps, mode)
            if mode is not FIXED:
                return {"search": f"{text}\n\n{how}"}
            bodies["search"] = f"{text}\n\n{how}"
        if cameras:
            bodies["static"] = f"{_compare(clip, cameras, api, runs, warmup_s, window_s)}\n\n{how}"
    return bodies


def substream_agreement(main_clip: Path, sub_clip: Path) -> float:
    """How far the recommended live model's detections on the sub-stream agree with those
    on the main stream: the same frames of both clips, boxes in main-stream pixels."""
    engine = Engine(INT8, **RECOMMENDED_DETECTOR)
    main = engine.detect(spread_frames(main_clip, AGREEMENT_FRAMES))
    scale = clip_size(main_clip)[0] / clip_size(sub_clip)[0]
    sub = [
        Detections(d.boxes * scale, d.scores, d.class_ids)
        for d in engine.detect(spread_frames(sub_clip, AGREEMENT_FRAMES))
    ]
    return agreement(main, sub)
