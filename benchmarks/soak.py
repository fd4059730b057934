"""Section 6: the live worker's memory over a long run.

A handful of pass-through 1080p cameras, half sampled at keyframes and half at 2 samples/s
(so both decode paths run), watched by `streetwatch run` with the recommended settings for M
minutes, posting to a real intake server. The worker's resident memory (VmRSS), threads and
open files are read from /proc every few seconds. The first fifth of the run is warm-up
(allocator arenas, ONNX Runtime buffers, the first incidents); a least-squares line through
the rest gives the slope. Flat: the line rises less than 1% of the RSS over the measured span.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from benchmarks.common import KEYINT_S, clip_size, table
from benchmarks.live import camera_config, cameras, describe, intake, live_worker, rss_mib

EVERY_S = 5.0
WARMUP_SHARE = 0.2
FLAT_SHARE = 0.01


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def _slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB), in MiB per hour."""
    ts = [t for t, _ in samples]
    vs = [v for _, v in samples]
    t_mean, v_mean = statistics.fmean(ts), statistics.fmean(vs)
    spread = sum((t - t_mean) ** 2 for t in ts)
    return sum((t - t_mean) * (v - v_mean) for t, v in samples) / spread * 3600


def run(clip: Path, minutes: float, count: int = 4) -> str:
    duration_s = minutes * 60
    how = describe(clip)
    samples: list[tuple[float, float]] = []  # (seconds since start, RSS MiB)
    size = clip_size(clip)
    with intake() as api, cameras(clip, count, KEYINT_S) as (_, urls):
        configs = [
            camera_config(f"cam-{i:03d}", url, {"keyframes": True} if i % 2 else {"fps": 2}, size)
            for i, url in enumerate(urls)
        ]
        with live_worker(api, configs) as worker:
            worker.wait_all_processing(count, timeout_s=120)
            started = time.monotonic()
            first = worker.metrics()
            handles = _threads(worker.pid), _open_files(worker.pid)
            while (now := time.monotonic() - started) < duration_s:
                samples.append((now, rss_mib(worker.pid)))
                time.sleep(EVERY_S)
            last = worker.metrics()
            handles_end = _threads(worker.pid), _open_files(worker.pid)
    processed = last.total("streetwatch_samples_processed_total") - first.total(
        "streetwatch_samples_processed_total"
    )
    incidents = last.total("streetwatch_incidents_total")
    reconnects = last.total("streetwatch_reconnects_total")
    warm = [s for s in samples if s[0] >= duration_s * WARMUP_SHARE]
    slope = _slope_per_hour(warm)
    span_h = (warm[-1][0] - warm[0][0]) / 3600
    mean_rss = statistics.fmean(v for _, v in warm)
    flat = abs(slope) * span_h < FLAT_SHARE * mean_rss
    by_minute = [v for t, v in samples if int(t) % 60 < EVERY_S]
    rows = [
        [
            f"{minutes:g}",
            count,
            f"{processed:.0f}",
            f"{samples[0][1]:.0f}",
            f"{warm[0][1]:.0f}",
            f"{samples[-1][1]:.0f}",
            f"{max(v for _, v in samples):.0f}",
            f"{slope:+.1f}",
            "**flat**" if flat else "**grows**",
        ]
    ]
    header = [
        "minutes",
        "cameras",
        "samples processed",
        "RSS at start MiB",
        "after warm-up",
        "at end",
        "max",
        "slope after warm-up MiB/h",
        "verdict",
    ]
    return (
        f"{table(header, rows)}\n\n"
        f"RSS by minute (MiB): {', '.join(f'{v:.0f}' for v in by_minute)}. "
        f"Threads {handles[0]} -> {handles_end[0]}, open files {handles[1]} -> {handles_end[1]}; "
        f"{incidents:.0f} incident events, {reconnects:.0f} reconnects. Cameras: half keyframes "
        f"only, half 2 samples/s; RSS read every {EVERY_S:g} s, the first "
        f"{WARMUP_SHARE:.0%} of the run is warm-up; flat = the fitted line rises less than "
        f"{FLAT_SHARE:.0%} of the RSS over the measured span.\n\n{how}"
    )
