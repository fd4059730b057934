#!/usr/bin/python3
"""A loopback RTSP server that plays video files as H.264 test cameras.

Run by the system Python (it needs GStreamer's `gi` bindings):

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --mount cam1=/path/to/video.avi

Each mount decodes its file with ffmpeg (any codec ffmpeg reads, e.g. the msmpeg4 of
opencv-doc's vtest.avi, which GStreamer alone cannot decode), scales it to --width x --height
at --fps, and GStreamer re-encodes it with x264 (zerolatency, a keyframe every --keyint frames;
--codec h265: x265, the parameter sets only in the SDP and the stream's first keyframe, as many
H.265 cameras send them). With --passthrough, each file must already be H.264 and is served as
it is (ffmpeg copies it, paced in real time; nothing is decoded or encoded), so many 1080p
cameras cost the machine little; --stagger spreads the mounts' starts over that many seconds,
so their keyframes do not all arrive at once. Files loop forever unless --once. --auth
USER:PASSWORD asks clients for those credentials (--auth-method basic or digest);
--session-timeout S ends a session that long without a keepalive. Prints one
line "READY rtsp://127.0.0.1:PORT/MOUNT ..." once listening. SIGTERM/SIGINT stop it cleanly;
the launcher in tests/support/testcam.py also SIGKILLs and SIGSTOPs its process group.
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
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"  # test cameras are never reachable from outside the machine


class Camera(GstRtspServer.RTSPMediaFactory):
    """One mount; every new media (first client after an idle spell) starts an ffmpeg that
    feeds the pipeline's fdsrc."""

    def __init__(self, path: Path, args: argparse.Namespace, launch: str) -> None:
        super().__init__()
        self.path = path
        self.args = args
        self.set_launch(launch)
        self.set_shared(True)  # like a real camera: all clients see the same stream
        self.connect("media-configure", self._on_media_configure)

    def _ffmpeg(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _on_media_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        decoder = self._ffmpeg()
        media.get_element().get_by_name("src").set_property("fd", decoder.stdout.fileno())

        def stop_decoder(_media: object) -> None:
            decoder.kill()
            decoder.wait()
            decoder.stdout.close()

        media.connect("unprepared", stop_decoder)


class FileCamera(Camera):
    """Decodes any file with ffmpeg, scales it, and re-encodes it with x264."""

    def __init__(self, path: Path, args: argparse.Namespace) -> None:
        rate = Fraction(args.fps).limit_denominator(1001)
        if args.codec == "h265":
            encode = (
                f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={args.keyint}"
                f" bitrate={args.bitrate} ! video/x-h265 ! rtph265pay name=pay0 pt=96"
                " config-interval=0"
            )
        else:
            # threads=1: one slice per frame. With zerolatency's sliced threads, rtph264pay
            # repeats SPS/PPS before every IDR slice and FFmpeg splits each keyframe in two.
            encode = (
                "x264enc tune=zerolatency speed-preset=ultrafast threads=1"
                f" key-int-max={args.keyint} bitrate={args.bitrate}"
                " ! video/x-h264,profile=constrained-baseline"
                " ! rtph264pay name=pay0 pt=96 config-interval=-1"
            )
        super().__init__(
            path,
            args,
            "( fdsrc name=src"
            f" ! rawvideoparse width={args.width} height={args.height} format=i420"
            f" framerate={rate.numerator}/{rate.denominator}"
            f" ! queue ! {encode} )",
        )

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


class CopyCamera(Camera):
    """Serves an H.264 file as it is: ffmpeg only demuxes it and paces it (-re), GStreamer
    parses and packetises. `delay_s` holds the stream back at start (see --stagger)."""

    def __init__(self, path: Path, args: argparse.Namespace, delay_s: float) -> None:
        # do-timestamp: the raw H.264 pipe carries no timestamps; ffmpeg's -re pacing gives them.
        # config-interval=0: the stream has SPS/PPS before every IDR already; repeated before
        # each IDR slice as well (-1), FFmpeg splits a multi-slice keyframe into two frames.
        super().__init__(
            path,
            args,
            "( fdsrc name=src do-timestamp=true ! h264parse ! video/x-h264,alignment=au"
            " ! rtph264pay name=pay0 pt=96 config-interval=0 )",
        )
        self.delay_s = delay_s

    def _ffmpeg(self) -> subprocess.Popen[bytes]:
        loop = [] if self.args.once else ["-stream_loop", "-1"]
        # No explicit -bsf:v h264_mp4toannexb: in ffmpeg 5.1 that one stops the stream at the
        # first loop ("A non-NULL packet sent after an EOF"); the muxer's own does not.
        command = [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-re", *loop, "-i", str(self.path),
            "-an", "-c:v", "copy", "-f", "h264", "pipe:1",
        ]  # fmt: skip
        delayed = ["sh", "-c", 'sleep "$0" && exec "$@"', f"{self.delay_s:.3f}", *command]
        return subprocess.Popen(delayed, stdout=subprocess.PIPE)


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
    parser.add_argument(
        "--passthrough",
        action="store_true",
        help="serve H.264 files without re-encoding (--fps/--width/--height/--keyint unused)",
    )
    parser.add_argument(
        "--stagger", type=float, default=0.0, help="passthrough: spread mount starts over S s"
    )
    parser.add_argument("--codec", choices=["h264", "h265"], default="h264")
    parser.add_argument(
        "--session-timeout",
        type=int,
        default=0,
        help="seconds a session lives without a keepalive (0: GStreamer's 60)",
    )
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="clients must authenticate")
    parser.add_argument("--auth-method", choices=["basic", "digest"], default="digest")
    args = parser.parse_args(argv)
    mounts = {}
    for spec in args.mount:
        name, sep, file = spec.partition("=")
        if not sep or not name.strip("/") or not Path(file).is_file():
            parser.error(f"--mount {spec!r}: want NAME=EXISTING_FILE")
        mounts["/" + name.strip("/")] = Path(file)
    args.mounts = mounts
    return args


def _auth(user: str, password: str, method: str) -> GstRtspServer.RTSPAuth:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    if method == "digest":
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    return auth


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    # One thread per client: the default single thread prepares the mounts' media one after
    # another, and with dozens of cameras the last ones time out.
    server.get_thread_pool().set_max_threads(-1)
    points = server.get_mount_points()
    for i, (mount, path) in enumerate(args.mounts.items()):
        if args.passthrough:
            factory: Camera = CopyCamera(path, args, args.stagger * i / len(args.mounts))
        else:
            factory = FileCamera(path, args)
        if args.auth:  # the authenticated role may open and play every mount
            permissions = GstRtspServer.RTSPPermissions()
            for permission in ("media.factory.access", "media.factory.construct"):
                permissions.add_permission_for_role("user", permission, True)
            factory.set_permissions(permissions)
        points.add_factory(mount, factory)
    if args.auth:
        server.set_auth(_auth(*args.auth.split(":", 1), args.auth_method))
    if args.session_timeout:
        timeout = args.session_timeout

        def on_client(_server: object, client: GstRtspServer.RTSPClient) -> None:
            client.connect("new-session", lambda _client, session: session.set_timeout(timeout))

        server.connect("client-connected", on_client)
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
