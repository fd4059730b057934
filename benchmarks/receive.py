"""Section 4f: what receiving a camera costs, the worker's PyAV path against GStreamer
pipelines whose non-key packets never reach Python (issue #26).

Every path receives the same loopback cameras (live.cameras: RTSP over TCP, 25 fps, a
keyframe every 2 s) and decodes nothing, so the figure is the receive path alone: RTSP,
RTP depacketising, H.264 parsing and whatever crosses into Python.

- PyAV: the worker's own `RtspSource`s in this process, their plans asking for no sample
  (capacity.receive_cost): FFmpeg's demuxer hands every packet to the camera's thread, which
  drops the non-key ones.
- GStreamer, a process per camera: `gst-launch-1.0 rtspsrc ! rtph264depay ! h264parse !
  identity drop-buffer-flags=delta-unit ! fdsink`, the keyframes alone written to a pipe that a
  thread of this process reads, as a worker would.
- GStreamer, one process for every camera: the same pipelines in one gst-launch, keyframes
  dropped in a fakesink: a lower bound for any design that keeps GStreamer's receive inside one
  process (the keyframes would still have to cross to the worker).

The CPU is /proc's, of this process and its children, per camera-second.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import av

from benchmarks.capacity import receive_cost
from benchmarks.common import KEYINT_S, clip_size, machine, table
from benchmarks.live import MOUNTS, SERVER_NICE, cameras, cpu_seconds

COUNTS = (24, 96)
SETTLE_S = 8.0  # every pipeline connected and past its first keyframe
RTSPSRC = ("protocols=tcp", "latency=0", "buffer-mode=0", "do-rtcp=false")


def _pipeline(url: str, sink: list[str]) -> list[str]:
    return [
        "rtspsrc",
        f"location={url}",
        *RTSPSRC,
        "!",
        "rtph264depay",
        "!",
        "h264parse",
        "!",
        "identity",
        "drop-buffer-flags=delta-unit",
        "!",
        *sink,
    ]


def _drain(pipe, counted: list[int]) -> None:
    """Reads a pipeline's keyframes as a worker's reader thread would, counting the bytes."""
    while chunk := pipe.read(1 << 16):
        counted[0] += len(chunk)


def _gst_cost(urls: list[str], window_s: float, one_process: bool) -> tuple[float, float]:
    """CPU per camera-second of GStreamer keyframe-only receive (children and this process's
    readers), and the keyframe bytes per camera-second that reached this process."""
    to_pipe = ["video/x-h264,stream-format=byte-stream,alignment=au", "!", "fdsink", "fd=1"]
    if one_process:
        args = ["gst-launch-1.0", "-q"]
        for url in urls:
            args += _pipeline(url, ["fakesink", "sync=false"])
        commands = [args]
    else:
        commands = [["gst-launch-1.0", "-q", *_pipeline(url, to_pipe)] for url in urls]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for cmd in commands
    ]
    counted = [0]
    readers = [threading.Thread(target=_drain, args=(p.stdout, counted)) for p in procs]
    try:
        for reader in readers:
            reader.start()
        time.sleep(SETTLE_S)
        if dead := [p.args for p in procs if p.poll() is not None]:
            raise RuntimeError(f"gst-launch ended early: {dead[0]}")

        def used() -> float:
            return cpu_seconds(os.getpid()) + sum(cpu_seconds(p.pid) for p in procs)

        started, cpu, got = time.monotonic(), used(), counted[0]
        time.sleep(window_s)
        seconds = time.monotonic() - started
        spent, got = used() - cpu, counted[0] - got
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        for reader in readers:
            reader.join()
    return spent / seconds * 1e3 / len(urls), got / seconds / len(urls)


def run(clips: dict[str, Path], window_s: float, counts: tuple[int, ...] = COUNTS) -> str:
    """The section's body: per stream and count, each path's CPU per camera-second."""
    rows = []
    for label, clip in clips.items():
        for count in counts:
            pyav = receive_cost(clip, count, window_s)
            with cameras(clip, count, KEYINT_S) as (_, urls):
                apart, keyframe_bytes = _gst_cost(urls, window_s, one_process=False)
            with cameras(clip, count, KEYINT_S) as (_, urls):
                together, _ = _gst_cost(urls, window_s, one_process=True)
            print(f"receive: {label} x{count}: {pyav:.2f} / {apart:.2f} / {together:.2f} ms")
            rows.append(
                [
                    label,
                    count,
                    f"**{pyav:.2f}**",
                    f"{apart:.2f} ({apart / pyav:.2f}x)",
                    f"{together:.2f} ({together / pyav:.2f}x)",
                    f"{keyframe_bytes / 1e3:.0f}",
                ]
            )
    header = [
        "stream",
        "cameras",
        "PyAV, the worker's path: ms per camera-second",
        "GStreamer, a process per camera, keyframes to Python (against PyAV)",
        "GStreamer, one process, keyframes dropped (against PyAV)",
        "keyframe kB per camera-second reaching Python (GStreamer)",
    ]
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    sizes = ", ".join(f"{label} {'x'.join(map(str, clip_size(c)))}" for label, c in clips.items())
    return (
        f"{table(header, rows)}\n\nEach cell: the cameras connected, {SETTLE_S:g} s to settle, "
        f"then {window_s:g} s measured; nothing decoded; CPU of the receiving processes (this "
        f"one and its gst-launch children) per camera-second. GStreamer 1.22 (Debian 12), "
        f"`rtspsrc {' '.join(RTSPSRC)}`; PyAV {av.__version__}.\n\nMachine: {machine()}; load "
        f"average at start {load}. Input: the street clip ({sizes}, H.264, 25 fps, a keyframe "
        f"every 2 s) from loopback RTSP cameras, `scripts/rtsp_server.py --passthrough`, niced "
        f"+{SERVER_NICE}, each camera its own RTSP session over TCP on at most {MOUNTS} shared "
        f"mounts."
    )
