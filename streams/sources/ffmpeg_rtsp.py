"""Live camera source whose RTSP session runs in an `ffmpeg` child that passes keyframes only.

    source = FfmpegRtspSource("cam-7", "rtsp://10.0.0.7/stream1", Sampling(keyframes=True))

The same source as `RtspSource` (health events, reconnects with backoff, the sample plan,
freeze and dead detection, `latest()`), for keyframe-sampled cameras, with the receiving moved
out of the worker's interpreter: an `ffmpeg` process per camera receives the stream (RTSP over
TCP, RTP depacketising, parsing), drops every non-key packet in C (a bitstream filter) and
writes the keyframes to a pipe in NUT framing; the camera's thread decodes them with PyAV as
before. The worker's Python then wakes once a keyframe instead of once a packet (25 a second),
so ~100 cameras no longer queue on one interpreter's lock for packets they drop
(benchmarks/RESULTS.md, sections 4g and 4c).

The filters: `setts` numbers the packets (an RTSP stream's first packets carry no timestamps,
which NUT refuses; the rules run on the receiving clock anyway), `noise=drop=not(key)` drops
non-key packets whatever the codec, `dump_extra` repeats the parameter sets (a camera that
sends them only in its SDP still decodes from any keyframe).

Timeouts: ffmpeg's own socket timeout (`-timeout`, half the read budget per blocking read)
ends a silent connection, and the first keyframe must come within the open budget or the
child is killed. What ffmpeg said on stderr is the reason reported. Needs `ffmpeg` on PATH,
FFmpeg 5.0 or later (`noise`'s `drop` expression): `check_ffmpeg()` says so once, at start.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import IO

import av
import av.error

from streams.sources.rtsp import FFMPEG_OPTIONS, RtspSource, _StreamLost
from streams.sources.sampling import Sampling

log = logging.getLogger(__name__)

FILTERS = "setts=pts=N:dts=N,noise=drop=not(key),dump_extra=freq=keyframe"
# NUT's header and index carry no stream-time the probe must wait for: open at once.
PROBE_OPTIONS = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}
STDERR_TAIL = 4096  # bytes of ffmpeg's stderr read back for the reason a connection ended


class FfmpegMissing(RuntimeError):
    """`worker.receive: ffmpeg` on a host whose ffmpeg is absent or too old."""


@functools.cache
def check_ffmpeg() -> str:
    """The ffmpeg program's path; raises FfmpegMissing saying what is wrong."""
    program = shutil.which("ffmpeg")
    if program is None:
        raise FfmpegMissing(
            "worker.receive: ffmpeg needs the ffmpeg program on PATH (Debian: apt install "
            "ffmpeg); or set worker.receive: pyav"
        )
    help_text = subprocess.run(
        [program, "-hide_banner", "-h", "bsf=noise"], capture_output=True, text=True, timeout=10
    ).stdout
    if "-drop" not in help_text:
        raise FfmpegMissing(
            f"worker.receive: ffmpeg needs FFmpeg 5.0 or later (its noise filter's drop "
            f"expression); {program} has none: upgrade it or set worker.receive: pyav"
        )
    return program


class FfmpegRtspSource(RtspSource):
    """A keyframe-sampled live camera received by an ffmpeg child (see the module's doc)."""

    keyframes_only = "ffmpeg"

    def __init__(self, camera_id: str, url: str, sampling: Sampling, **options: object) -> None:
        super().__init__(camera_id, url, sampling, **options)  # type: ignore[arg-type]
        self._child_lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None  # the current child's, read for its reason
        self._spawned_at = 0.0

    def stop(self, wait: bool = True) -> None:
        self._stopping.set()
        self._kill_child()  # the decode thread is blocked reading its pipe: EOF wakes it
        super().stop(wait)

    # -- decode thread -------------------------------------------------------------------

    def _command(self) -> list[str]:
        rtsp = self.url.startswith(("rtsp://", "rtsps://"))  # the CLI refuses them elsewhere
        probe = {"analyzeduration": FFMPEG_OPTIONS["analyzeduration"]}
        options = self._input_options() if rtsp else probe
        inputs = [arg for key, value in options.items() for arg in (f"-{key}", value)]
        return [
            check_ffmpeg(), "-nostdin", "-nostats", "-hide_banner", "-loglevel", "error",
            *inputs, "-i", self.url,
            "-map", "0:v:0", "-c", "copy", "-bsf:v", FILTERS,
            "-f", "nut", "-flush_packets", "1", "pipe:1",
        ]  # fmt: skip

    def _open(self) -> av.container.InputContainer:
        self._spawned_at = time.monotonic()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the connection ends)
        child = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
        )
        with self._child_lock:
            self._child = child
        if self._stopping.is_set():
            self._kill_child()
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], self.open_timeout_s)
        if not ready:
            raise _StreamLost(f"no answer within {self.open_timeout_s:g}s")
        try:
            return av.open(
                f"pipe:{child.stdout.fileno()}",
                format="nut",
                options=PROBE_OPTIONS,
                hwaccel=self.hwaccel,
            )
        except av.error.FFmpegError as exc:
            raise self._ended(child, f"cannot open: {exc}") from exc

    def _connection(self) -> None:
        self._child = None
        try:
            super()._connection()  # returns when ffmpeg's pipe ends
            if not self._stopping.is_set() and (child := self._child) is not None:
                raise self._ended(child, "stream ended")
        finally:
            child = self._child
            self._kill_child()
            if child is not None:
                # Closed here, on the thread that reads it, never by stop().
                assert child.stdout is not None
                child.stdout.close()
            if self._stderr is not None:
                self._stderr.close()

    def _ended(self, child: subprocess.Popen[bytes], otherwise: str) -> _StreamLost:
        """Why the child stopped writing, from its exit and stderr."""
        try:
            child.wait(timeout=self.read_timeout_s)
        except subprocess.TimeoutExpired:
            return _StreamLost(otherwise)
        assert self._stderr is not None
        lines = _tail_lines(self._stderr)
        said = lines[-1] if lines else ""
        lower = "\n".join(lines).lower()
        if "timed out" in lower:
            if self.connected:
                return _StreamLost(f"no data for {self.read_timeout_s:g}s")
            return _StreamLost(f"no answer within {self.open_timeout_s:g}s")
        if "matches no streams" in lower:
            return _StreamLost("no video stream", "decode_error")
        if "invalid data" in lower and not self.connected:
            # Its socket timeout is the budget of the call that was kept waiting, if any.
            return self._invalid_data(said, self._spawned_at, self.read_timeout_s / 2)
        if "invalid data" in lower or "could not find codec" in lower:
            return _StreamLost(f"not a playable stream: {said}", "decode_error")
        return _StreamLost(f"cannot open: {said}" if said else otherwise)

    def _kill_child(self) -> None:
        """Ends the child (any thread); its pipe then ends for the decode thread."""
        with self._child_lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGKILL)  # nothing of ffmpeg's is worth a clean exit
            child.wait()


def _tail_lines(stderr: IO[bytes]) -> list[str]:
    """The last lines ffmpeg wrote to its stderr (its errors, at `-loglevel error`)."""
    size = os.fstat(stderr.fileno()).st_size
    stderr.seek(max(0, size - STDERR_TAIL))
    return stderr.read().decode(errors="replace").strip().splitlines()
