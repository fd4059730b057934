#!/usr/bin/python3
"""A loopback RTSP server that plays video files as H.264 test cameras.

Run by the system Python (it needs GStreamer's `gi` bindings):

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --mount cam1=/path/to/video.avi

Each mount decodes its file with ffmpeg (any codec ffmpeg reads, e.g. the msmpeg4 of
opencv-doc's vtest.avi, which GStreamer alone cannot decode), scales it to --width x
--height at --fps, and GStreamer re-encodes it with x264 (zerolatency, a keyframe every
--keyint frames). Files loop forever unless --once. Prints one line
"READY rtsp://127.0.0.1:PORT/MOUNT ..." once listening. SIGTERM/SIGINT stop it cleanly;
the launcher in tests/streams/rtsp_server.py also SIGKILLs and SIGSTOPs its process group.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"  # test cameras are never reachable from outside the machine


class FileCamera(GstRtspServer.RTSPMediaFactory):
    """Serves one file; every new media (first client after an idle spell) starts an ffmpeg."""

    def __init__(self, path: Path, args: argparse.Namespace) -> None:
        super().__init__()
        self.path = path
        self.args = args
        rate = Fraction(args.fps).limit_denominator(1001)
        # threads=1: one slice per frame. With zerolatency's sliced threads, rtph264pay repeats
        # SPS/PPS before every IDR slice and FFmpeg splits each keyframe into two frames.
        self.set_launch(
            "( fdsrc name=src"
            f" ! rawvideoparse width={args.width} height={args.height} format=i420"
            f" framerate={rate.numerator}/{rate.denominator}"
            " ! queue ! x264enc tune=zerolatency speed-preset=ultrafast threads=1"
            f" key-int-max={args.keyint} bitrate={args.bitrate}"
            " ! video/x-h264,profile=constrained-baseline"
            " ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        self.set_shared(True)  # like a real camera: all clients see the same stream
        self.connect("media-configure", self._on_media_configure)

    def _ffmpeg(self) -> subprocess.Popen[bytes]:
        a = self.args
        loop = [] if a.once else ["-stream_loop", "-1"]
        command = [
            "ffmpeg", "-nostdin", "-loglevel", "error", *loop, "-i", str(self.path),
            "-an", "-vf", f"scale={a.width}:{a.height},fps={a.fps}",
            "-pix_fmt", "yuv420p", "-f", "rawvideo", "pipe:1",
        ]  # fmt: skip
        # If the server dies, the pipe's read end closes and ffmpeg exits on EPIPE.
        return subprocess.Popen(command, stdout=subprocess.PIPE)

    def _on_media_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        decoder = self._ffmpeg()
        media.get_element().get_by_name("src").set_property("fd", decoder.stdout.fileno())

        def stop_decoder(_media: object) -> None:
            decoder.kill()
            decoder.wait()
            decoder.stdout.close()

        media.connect("unprepared", stop_decoder)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port")
    parser.add_argument(
        "--mount", action="append", required=True, metavar="PATH=FILE", help="repeatable"
    )
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--keyint", type=int, default=20, help="frames between keyframes")
    parser.add_argument("--bitrate", type=int, default=1000, help="kbit/s")
    parser.add_argument("--once", action="store_true", help="play each file once, not looped")
    args = parser.parse_args(argv)
    mounts = {}
    for spec in args.mount:
        name, sep, file = spec.partition("=")
        if not sep or not name.strip("/") or not Path(file).is_file():
            parser.error(f"--mount {spec!r}: want NAME=EXISTING_FILE")
        mounts["/" + name.strip("/")] = Path(file)
    args.mounts = mounts
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    points = server.get_mount_points()
    for mount, path in args.mounts.items():
        points.add_factory(mount, FileCamera(path, args))
    if server.attach(None) == 0:
        print(f"cannot listen on {HOST}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, loop.quit)
    port = server.get_bound_port()
    urls = " ".join(f"rtsp://{HOST}:{port}{mount}" for mount in args.mounts)
    print(f"READY {urls}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
