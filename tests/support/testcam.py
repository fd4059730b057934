"""Loopback test cameras: scripts/rtsp_server.py under control, with fault injection.

Used by the tests and by `make demo`; cameras listen on 127.0.0.1 only.

with RtspServer({"cam": clip}, keyint=10) as server:
    url = server.url("cam")
    server.kill(); server.restart()  # same port: clients can reconnect
    server.freeze(); server.thaw()  # SIGSTOP / SIGCONT: connections stay open, silent

RtspServer({"cam-1": mp4, "cam-2": mp4}, passthrough=True, stagger_s=2.0) serves H.264 files
without re-encoding, for many cameras at full resolution (benchmarks/capacity.py).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # GStreamer's gi bindings are a Debian package
READY_TIMEOUT_S = 15.0
T = TypeVar("T")


class RtspServer:
    def __init__(
        self,
        mounts: dict[str, Path],
        *,
        fps: float = 10.0,
        width: int = 320,
        height: int = 240,
        keyint: int = 20,
        once: bool = False,
        passthrough: bool = False,
        stagger_s: float = 0.0,
        codec: str = "h264",
        auth: str | None = None,
        auth_method: str = "digest",
        session_timeout_s: int = 0,
    ) -> None:
        """passthrough: serve H.264 files as they are (fps, size, keyint and codec unused),
        their starts spread over stagger_s seconds; auth: "USER:PASSWORD" the clients must
        give (by auth_method: basic or digest); session_timeout_s: how long a session lives
        without a keepalive (0: GStreamer's 60 s); see scripts/rtsp_server.py."""
        self.mounts = mounts
        if passthrough:
            self.options = ["--passthrough", "--stagger", str(stagger_s)]
        else:
            self.options = ["--fps", str(fps), "--width", str(width), "--height", str(height)]
            self.options += ["--keyint", str(keyint), "--codec", codec]
        if auth is not None:
            self.options += ["--auth", auth, "--auth-method", auth_method]
        self.options += ["--session-timeout", str(session_timeout_s)]
        self.options += ["--once"] * once
        self.port = 0  # the first start picks a free port; restarts reuse it
        self.process: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self) -> None:
        command = [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), *self.options]
        for name, path in self.mounts.items():
            command += ["--mount", f"{name}={path}"]
        # Its own process group, so signals reach its ffmpeg decoders too.
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        line = self._read_line(READY_TIMEOUT_S)
        if not line.startswith("READY "):
            self.kill()
            raise RuntimeError(f"rtsp_server.py did not start: {line!r}")
        self.port = int(line.split()[1].rsplit(":", 1)[1].split("/", 1)[0])

    def _read_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return ""
        return self.process.stdout.readline().strip()

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """Dies like a camera losing power: no TEARDOWN, connections reset."""
        self._signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        self.thaw()
        self._signal(signal.SIGTERM)
        try:
            self._reap(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        """Starts again on the same port (the port may take a moment to be free)."""
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _reap(self, timeout: float | None = None) -> None:
        if self.process is None:
            return
        self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on the loopback address right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    check: Callable[[], T | None], timeout_s: float, what: str, poll_s: float = 0.25
) -> T:
    """Polls `check` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(poll_s)
    raise TimeoutError(f"gave up waiting for {what} after {timeout_s:g} s")
