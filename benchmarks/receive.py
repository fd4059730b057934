"""Section 4g: what receiving a camera costs, the worker's PyAV path against FFmpeg and
GStreamer processes whose non-key packets never reach Python (issue #26).

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
- Chunked reads, a thread per camera in this process: a bare RTSP-over-TCP reader of this
  module's own (DESCRIBE, SETUP interleaved, PLAY; no auth, no keepalive: a measurement, not a
  source) that takes whatever the socket holds with each `recv` and finds the keyframes' NAL
  units in the interleaved RTP packets. FFmpeg's demuxer reads every interleaved packet in three
  reads of its own, each behind a `poll` (~1,900 system calls a second for a 1080p camera):
  this says what a receiver that reads in chunks would save.

The CPU is /proc's, of this process and its children, per camera-second.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

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


IDR, STAP_A, FU_A = 5, 24, 28  # H.264 NAL unit types (RFC 6184)


def _request(sock: socket.socket, method: str, url: str, cseq: int, extra: str = "") -> str:
    """One RTSP request and its reply, head and body (DESCRIBE's SDP). A mount already
    playing for other clients may send this one's packets ahead of PLAY's reply: what comes
    before the reply is dropped (the first packets: a measurement loses nothing by it)."""
    sock.sendall(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n".encode())
    reply = b""
    while (start := reply.find(b"RTSP/1.0 ")) < 0 or b"\r\n\r\n" not in reply[start:]:
        if not (chunk := sock.recv(4096)):
            raise ConnectionError(f"{method} {url}: the camera closed the connection")
        reply += chunk
    head, _, body = reply[start:].partition(b"\r\n\r\n")
    text = head.decode(errors="replace")
    if not text.startswith("RTSP/1.0 200"):
        raise ConnectionError(f"{method} {url}: {text.splitlines()[0]}")
    if length := re.search(r"Content-Length: *(\d+)", text, re.I):
        while len(body) < int(length.group(1)):
            if not (chunk := sock.recv(4096)):
                raise ConnectionError(f"{method} {url}: the reply ended early")
            body += chunk
    return f"{text}\r\n\r\n{body.decode(errors='replace')}"


def _keyframe_payload(buffer: bytearray, start: int, end: int) -> bool:
    """Whether the RTP packet in `buffer[start:end]` carries (part of) an IDR picture: what
    a keyframe-only receiver would keep and assemble."""
    first = buffer[start]
    header = start + 12 + 4 * (first & 0x0F)
    if first & 0x10 and header + 4 <= end:  # an extension header
        header += 4 + 4 * ((buffer[header + 2] << 8) | buffer[header + 3])
    if header + 1 >= end:
        return False
    nal = buffer[header] & 0x1F
    if nal in (FU_A, STAP_A):
        return buffer[header + 1] & 0x1F == IDR
    return nal == IDR


def _chunked(url: str, stop: threading.Event, keyframes: list[int]) -> None:
    """Receives one camera until `stop`, connecting again while the loaded loopback server
    is slow to answer (as the worker's sources do), and counts its keyframes' RTP packets
    in `keyframes` (a one-item tally)."""
    while not stop.is_set():
        try:
            _receive_chunked(url, stop, keyframes)
        except OSError:  # refused, timed out, reset (ConnectionError included)
            stop.wait(0.5)


def _receive_chunked(url: str, stop: threading.Event, keyframes: list[int]) -> None:
    """One connection: a `recv` takes all the socket holds."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 554), timeout=10) as sock:
        described = _request(sock, "DESCRIBE", url, 1, "Accept: application/sdp\r\n")
        base = re.search(r"Content-Base: *(\S+)", described, re.I)
        control = re.search(r"m=video.*?a=control:(\S+)", described, re.S)
        track = (control.group(1) if control else "").strip()
        if not track.startswith("rtsp://"):
            track = (base.group(1) if base else url + "/") + track
        transport = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
        session = re.search(r"Session: *([^;\r\n]+)", _request(sock, "SETUP", track, 2, transport))
        if session is None:
            raise ConnectionError(f"SETUP {track}: no session")
        _request(sock, "PLAY", url, 3, f"Session: {session.group(1)}\r\nRange: npt=0-\r\n")
        sock.settimeout(1.0)
        buffer = bytearray()
        while not stop.is_set():
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            at, size = 0, len(buffer)
            # Plain indexing, no slices: this loop runs once per RTP packet (~300 a second
            # for a 1080p camera), the rest once per `recv`.
            while size - at >= 4:
                if buffer[at] != 0x24:  # an RTSP reply between packets: skip to the next '$'
                    found = buffer.find(b"$", at + 1)
                    at = found if found >= 0 else size
                    continue
                end = at + 4 + ((buffer[at + 2] << 8) | buffer[at + 3])
                if end > size:
                    break
                if buffer[at + 1] == 0 and _keyframe_payload(buffer, at + 4, end):
                    keyframes[0] += 1
                at = end
            del buffer[:at]


def _chunked_cost(urls: list[str], window_s: float) -> float:
    """CPU per camera-second of this process receiving `urls` with `_chunked` threads."""
    stop = threading.Event()
    tallies = [[0] for _ in urls]
    threads = [
        threading.Thread(target=_chunked, args=(url, stop, tally), daemon=True)
        for url, tally in zip(urls, tallies, strict=True)
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30.0
        while (silent := [u for u, tally in zip(urls, tallies, strict=True) if not tally[0]]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        if silent:
            raise RuntimeError(f"no keyframe received from {silent[0]} within 30 s")
        time.sleep(SETTLE_S)
        started, cpu = time.monotonic(), cpu_seconds(os.getpid())
        time.sleep(window_s)
        spent = cpu_seconds(os.getpid()) - cpu
        seconds = time.monotonic() - started
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    return spent / seconds * 1e3 / len(urls)


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
            with cameras(clip, count, KEYINT_S) as (_, urls):
                others.append(_chunked_cost(urls, window_s))
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
        "chunked reads in Python, keyframes' packets found (against PyAV)",
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
