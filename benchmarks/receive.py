"""Section 4g: what receiving a camera costs, the worker's PyAV path against FFmpeg and
GStreamer processes whose non-key packets never reach Python, and against the worker's own
chunked RTSP client (issue #26).

Every path receives the same loopback cameras (live.cameras: RTSP over TCP, 25 fps, a
keyframe every 2 s) and decodes nothing, so the figure is the receive path alone: RTSP,
RTP depacketising, H.264 parsing and whatever crosses into Python.

- PyAV: the worker's own `RtspSource`s in this process, their plans asking for no sample
  (capacity.receive_cost): FFmpeg's demuxer hands every packet to the camera's thread, which
  drops the non-key ones.
- FFmpeg, a process per camera: `ffmpeg -i URL -c copy -bsf:v filter_units=remove_types=1
  -f h264 pipe:1`, non-IDR slices dropped by a bitstream filter in C, the keyframes read from a
  pipe by a thread of this process.
- GStreamer, a process per camera: `gst-launch-1.0 rtspsrc ! rtph264depay ! h264parse !
  identity drop-buffer-flags=delta-unit ! fdsink`, the keyframes alone written to a pipe that a
  thread of this process reads, as a worker would.
- GStreamer, one process for every camera: the same pipelines in one gst-launch, keyframes
  dropped in a fakesink: a lower bound for any design that keeps GStreamer's receive inside one
  process (the keyframes would still have to cross to the worker).
- Chunked: the worker's `ChunkedRtspSource`s (`worker.receive: chunked`) in this process, their
  plans asking for no sample (capacity.receive_cost): StreetWatch's own RTSP client takes what
  the socket holds, woken by the kernel once a tenth of a second of the stream is there, and
  keeps the keyframes' RTP packets, where FFmpeg's demuxer reads every interleaved packet in
  three reads of its own, each behind a `poll` (~1,900 system calls a second for a 1080p
  camera).

The CPU is /proc's, of this process and its children, per camera-second.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import av

from benchmarks.capacity import receive_cost
from benchmarks.common import KEYINT_S, clip_size, machine, table
from benchmarks.live import MOUNTS, SERVER_NICE, cameras, cpu_seconds
from streams.sources.chunked_rtsp import ChunkedRtspSource

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


def _drain(pipe: IO[bytes]) -> None:
    """Reads a child's keyframes as a worker's reader thread would (and drops them)."""
    while pipe.read(1 << 16):
        pass


def _gst(urls: list[str], one_process: bool) -> list[list[str]]:
    """gst-launch command lines: one per camera writing its keyframes to stdout, or one for
    every camera dropping them in a fakesink."""
    if one_process:
        args = ["gst-launch-1.0", "-q"]
        for url in urls:
            args += _pipeline(url, ["fakesink", "sync=false"])
        return [args]
    to_pipe = ["video/x-h264,stream-format=byte-stream,alignment=au", "!", "fdsink", "fd=1"]
    return [["gst-launch-1.0", "-q", *_pipeline(url, to_pipe)] for url in urls]


def _ffmpeg(urls: list[str]) -> list[list[str]]:
    """An ffmpeg per camera, its bitstream filter dropping non-IDR slices (NAL type 1) inside
    FFmpeg, the keyframes written to stdout."""
    return [
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
         "-map", "0:v", "-c", "copy", "-bsf:v", "filter_units=remove_types=1", "-f", "h264",
         "pipe:1"]
        for url in urls
    ]  # fmt: skip


def _children_cost(commands: list[list[str]], cameras_: int, window_s: float) -> float:
    """CPU per camera-second of `commands` (receiving `cameras_` cameras) and of this
    process's threads reading what they write."""
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for cmd in commands
    ]
    readers = [threading.Thread(target=_drain, args=(p.stdout,)) for p in procs]
    try:
        for reader in readers:
            reader.start()
        time.sleep(SETTLE_S)
        if dead := [p.args for p in procs if p.poll() is not None]:
            raise RuntimeError(f"ended early: {' '.join(dead[0])}")

        def used() -> float:
            return cpu_seconds(os.getpid()) + sum(cpu_seconds(p.pid) for p in procs)

        started, cpu = time.monotonic(), used()
        time.sleep(window_s)
        seconds = time.monotonic() - started
        spent = used() - cpu
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        for reader in readers:
            reader.join()
    return spent / seconds * 1e3 / cameras_


def run(clips: dict[str, Path], window_s: float, counts: tuple[int, ...] = COUNTS) -> str:
    """The section's body: per stream and count, each path's CPU per camera-second."""
    rows = []
    for label, clip in clips.items():
        for count in counts:
            pyav = receive_cost(clip, count, window_s)
            others = []
            for commands in (_ffmpeg, lambda u: _gst(u, False), lambda u: _gst(u, True)):
                with cameras(clip, count, KEYINT_S) as (_, urls):
                    others.append(_children_cost(commands(urls), count, window_s))
            others.append(receive_cost(clip, count, window_s, ChunkedRtspSource))
            print(f"receive: {label} x{count}: {pyav:.2f} / {others} ms", flush=True)
            rows.append(
                [label, count, f"**{pyav:.2f}**"]
                + [f"{ms:.2f} ({ms / pyav:.2f}x)" for ms in others]
            )
    header = [
        "stream",
        "cameras",
        "PyAV in the worker (today): ms per camera-second",
        "ffmpeg per camera, keyframes only to Python (against PyAV)",
        "GStreamer per camera, keyframes only to Python (against PyAV)",
        "GStreamer, one process for all, keyframes dropped (against PyAV)",
        "`receive: chunked` in the worker (against PyAV)",
    ]
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    sizes = ", ".join(f"{label} {'x'.join(map(str, clip_size(c)))}" for label, c in clips.items())
    return (
        f"{table(header, rows)}\n\nEach cell: the cameras connected, {SETTLE_S:g} s to settle, "
        f"then {window_s:g} s measured; nothing decoded; CPU of the receiving processes (this "
        f"one, its reader threads and its children) per camera-second. GStreamer 1.22 and "
        f"FFmpeg 5.1 (Debian 12), `rtspsrc {' '.join(RTSPSRC)}`; PyAV {av.__version__} (its "
        f"own FFmpeg).\n\nMachine: {machine()}; load average at start {load}. Input: the "
        f"street clip ({sizes}, H.264, 25 fps, a keyframe every 2 s) from loopback RTSP "
        f"cameras, `scripts/rtsp_server.py --passthrough`, niced +{SERVER_NICE}, each camera "
        f"its own RTSP session over TCP on at most {MOUNTS} shared "
        f"mounts."
    )
