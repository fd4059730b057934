"""Live camera source: RTSP over TCP, decoded on a thread per camera, latest frame wins.

    source = RtspSource("cam-7", "rtsp://10.0.0.7/stream1", Sampling(keyframes=True),
                        on_health=events.put)
    source.start()
    while running:
        frame = source.latest(timeout=1.0)  # the newest sample, or None; stale ones are dropped
    source.stop()

or simply `for frame in source.frames(): ...`, which starts the source and stops it when the
loop ends. The decode thread reconnects forever, with capped, fully jittered exponential
backoff, and reports what happens as HealthEvents (see streams/sources/health.py).

What is decoded follows the camera's SamplePlan (streams/sources/sampling.py), decided at each
keyframe before decoding: a keyframe (with `fps`, a group of pictures) with no sample due is
never decoded, and with keyframe sampling non-key packets never reach the decoder. The first
picture of a connection, or after the camera was dead, is always decoded, and no skip lets a
camera go `dead_after_s / 2` without a decoded picture, so health is judged as before.

Time: `Frame.wall_time` is time.time() at decode; `Frame.pts` is seconds since start(), taken
from the monotonic clock, so it keeps increasing across reconnects and clock steps: the rules
run on pts, and a camera's own timestamps restart at every reconnect.

Timeouts. Opening is bounded by PyAV's interrupt callback, which restarts its timer per
blocking FFmpeg call; open and probe are two such calls, so each gets half the budget.
Reading is bounded by FFmpeg's own socket timeout (`timeout`, per blocking read without
data), again half the budget a call (the RTP depacketiser may hand out one held-back frame
when the first read times out). Not the callback while reading: it takes the GIL at every
FFmpeg I/O check, several per RTP packet, and with ~100 cameras in one process that GIL
traffic tripled the cost of receiving (benchmarks/RESULTS.md, section 4c). What the socket
timeout does not cut is a camera that dribbles bytes without ever completing a packet; the
worker's view of it is still right: such a camera delivers no picture, and `latest()` reports
it dead on the consumer's thread just as the decode thread would.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import av
import av.error
import numpy as np
from av.codec.hwaccel import HWAccel

from api.client.backoff import Backoff
from detector.types import Frame
from streams.sources.files import configure_decoder, drain
from streams.sources.health import FreezeDetector, HealthCallback, HealthEvent, HealthKind, report
from streams.sources.sampling import SamplePlan, Sampling

log = logging.getLogger(__name__)

FFMPEG_OPTIONS = {
    "rtsp_transport": "tcp",  # UDP loses packets (smeared frames) and is often firewalled
    "allowed_media_types": "video",  # don't set up a camera's audio track
    "analyzeduration": "500000",  # µs probed at open: the default 5 s delays every (re)connect
}
EVERY_FRAME = Sampling()
RECONNECT_BACKOFF = Backoff(initial_s=0.5, max_s=30.0)
SIGNATURE_SIZE = (32, 24)  # width, height of the grey thumbnail compared for frozen pictures


@dataclass(slots=True)
class RtspStats:
    """Counters for one camera; written by its decode thread, read by anyone."""

    connects: int = 0  # connections that delivered pictures
    reconnects: int = 0  # of those, the ones after the first
    failed_connects: int = 0  # attempts that never got a picture
    decoded: int = 0  # frames out of the decoder
    produced: int = 0  # samples put in the mailbox
    delivered: int = 0  # samples taken by the consumer
    dropped: int = 0  # samples overwritten before the consumer took them
    decode_errors: int = 0  # packets the decoder rejected
    last_frame_at: float | None = None  # time.monotonic() of the last decoded frame

    @property
    def last_frame_age_s(self) -> float | None:
        return None if self.last_frame_at is None else time.monotonic() - self.last_frame_at


class _StreamLost(Exception):
    """Ends one connection; the message says why (for the health event)."""

    def __init__(self, reason: str, kind: HealthKind = "disconnected") -> None:
        super().__init__(reason)
        self.kind = kind


class RtspSource:
    """One live camera, run once: start(), then latest() or frames(), then stop().

    `on_health` is called on the decode thread, so it should be quick (a queue's put).
    """

    # A receive path that passes keyframes only names itself here: other sampling is refused.
    keyframes_only: ClassVar[str] = ""

    def __init__(
        self,
        camera_id: str,
        url: str,
        sampling: Sampling = EVERY_FRAME,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        backoff: Backoff = RECONNECT_BACKOFF,
        backoff_reset_s: float = 10.0,
        dead_after_s: float = 30.0,
        freeze_after_s: float = 60.0,
        on_health: HealthCallback | None = None,
        plan: SamplePlan | None = None,
        hwaccel: HWAccel | None = None,
        on_sample: Callable[[], None] | None = None,
    ) -> None:
        """hwaccel: decode on this device (streams.sources.hwdecode), else on the CPU.
        on_sample: called on the decode thread each time a new sample is in the mailbox (a
        worker's wake-up, so its loop sleeps until there is something to take)."""
        if self.keyframes_only and not sampling.keyframes:
            raise ValueError(
                f"camera {camera_id}: the {self.keyframes_only} receive path passes keyframes "
                f"only; sample: {{keyframes: true}}, or receive it with PyAV"
            )
        self.camera_id = camera_id
        self.hwaccel = hwaccel
        self.url = url
        password = urlsplit(url).password
        self._secrets = (
            sorted({password, unquote(password)}, key=len, reverse=True) if password else []
        )
        self.sampling = sampling
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.backoff = backoff
        self.backoff_reset_s = backoff_reset_s  # a connection up this long starts over
        self.dead_after_s = dead_after_s
        self.on_health = on_health
        self.on_sample = on_sample
        self.stats = RtspStats()
        self.connected = False  # pictures are flowing on the current connection
        self.dead = False  # no picture for dead_after_s; cleared by the next picture
        self._freeze = FreezeDetector(freeze_after_s)
        self.plan = plan or SamplePlan(sampling)  # which pictures get decoded and sampled
        self._stopping = threading.Event()
        self._dead_lock = threading.Lock()
        self._slot_lock = threading.Condition()
        self._slot: Frame | None = None
        self._thread: threading.Thread | None = None
        self._started_at = 0.0  # monotonic; pts counts from here
        self._connected_at = 0.0  # monotonic; when the current connection's pictures began
        self._last_pts = -1.0
        self._index = -1
        self._corrupt_reported = False  # on this connection

    # -- consumer side -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"rtsp-{self.camera_id}", daemon=True
        )
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stops the decode thread; returns within the open or read timeout (plus a margin),
        logging a thread that is still stuck then (a camera dribbling bytes, see above).

        To stop many cameras within one such bound, call stop(wait=False) on each, then stop().
        """
        self._stopping.set()
        with self._slot_lock:
            self._slot_lock.notify_all()
        if self._thread is None or not wait:
            return
        self._thread.join(max(self.open_timeout_s, self.read_timeout_s) + 2.0)
        if self._thread.is_alive():
            log.warning("camera %s: decode thread still blocked after stop()", self.camera_id)

    def latest(self, timeout: float | None = None) -> Frame | None:
        """Takes the newest sample, waiting up to `timeout` for one; None if none came
        (or the source stopped). Each sample is handed out once; `timeout=0` only looks."""
        with self._slot_lock:
            if self._slot is None and timeout != 0 and not self._stopping.is_set():
                self._slot_lock.wait(timeout)
            frame, self._slot = self._slot, None
        if frame is not None:
            self.stats.delivered += 1
        elif self._thread is not None:
            self._check_dead()  # also when the decode thread is stuck in a dribbling read
        return frame

    def frames(self) -> Iterator[Frame]:
        """Starts the source and yields samples until stop(); leaving the loop stops it."""
        self.start()
        try:
            while not self._stopping.is_set():
                frame = self.latest(timeout=0.5)  # wake now and then to notice stop()
                if frame is not None:
                    yield frame
        finally:
            self.stop()

    def __enter__(self) -> RtspSource:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- decode thread -------------------------------------------------------------------

    def _health(self, kind: HealthKind, detail: str = "") -> None:
        for secret in self._secrets:  # FFmpeg's messages quote the URL, credentials and all
            detail = detail.replace(secret, "***")
        report(HealthEvent(self.camera_id, kind, detail), self.on_health)

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._connection()
                reason, kind = "stream ended", "disconnected"
            except _StreamLost as lost:
                reason, kind = str(lost), lost.kind
            except Exception as exc:  # a bug or an FFmpeg surprise must not end the camera
                log.exception("camera %s: unexpected error", self.camera_id)
                reason, kind = f"unexpected {type(exc).__name__}: {exc}", "decode_error"
            if self._stopping.is_set():
                break
            if self.connected:
                self.connected = False
                self._health("disconnected", reason)
                if time.monotonic() - self._connected_at >= self.backoff_reset_s:
                    attempt = 0  # a flapping camera keeps backing off; a stable one doesn't
            else:
                self.stats.failed_connects += 1
                if kind == "decode_error":
                    self._health("decode_error", reason)
            delay = self.backoff.delay(attempt)
            attempt += 1
            self._health("reconnecting", f"attempt {attempt} in {delay:.1f}s: {reason}")
            self._wait(delay)
        self.connected = False

    def _wait(self, seconds: float) -> None:
        """Sleeps, waking early on stop() and to report a dead camera on time."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            self._check_dead()
            self._stopping.wait(min(left, 0.5))

    def _check_dead(self) -> None:
        """Called by the decode thread and by latest(): the lock makes the report once."""
        last = self.stats.last_frame_at or self._started_at
        if self.dead or time.monotonic() - last < self.dead_after_s:
            return
        with self._dead_lock:
            if self.dead:
                return
            self.dead = True
        self._health("dead", f"no picture for {self.dead_after_s:g}s")

    def _input_options(self) -> dict[str, str]:
        """FFmpeg's options for the camera, half the read budget per blocking read."""
        return {**FFMPEG_OPTIONS, "timeout": str(round(self.read_timeout_s / 2 * 1e6))}

    def _invalid_data(self, detail: str, began: float, budget_s: float) -> _StreamLost:
        """FFmpeg says "invalid data" both for a garbage reply and for no reply at all: a
        call (begun at `began`) that took about its whole budget was kept waiting."""
        if time.monotonic() - began >= budget_s * 0.9:
            return _StreamLost(f"no answer within {self.open_timeout_s:g}s")
        return _StreamLost(f"not a playable stream: {detail}", "decode_error")

    def _open(self) -> av.container.InputContainer:
        began = time.monotonic()
        try:
            container = av.open(
                self.url,
                options=self._input_options(),
                timeout=(self.open_timeout_s / 2, None),  # no callback while reading
                hwaccel=self.hwaccel,
            )
        except av.error.InvalidDataError as exc:
            raise self._invalid_data(str(exc), began, self.open_timeout_s / 2) from exc
        except (av.error.ExitError, av.error.TimeoutError) as exc:
            raise _StreamLost(f"no answer within {self.open_timeout_s:g}s") from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise _StreamLost(f"cannot open: {exc}") from exc
        video = container.streams.video
        if not video or video[0].codec_context is None:
            what = f"no decoder for {video[0].codec.name}" if video else "no video stream"
            container.close()
            raise _StreamLost(what, "decode_error")
        return container

    def _connection(self) -> None:
        """One connection, from open to the end of the stream; raises _StreamLost."""
        began = time.monotonic()
        container = self._open()
        try:
            stream = container.streams.video[0]
            configure_decoder(stream, self.sampling)
            if self.sampling.keyframes:
                # Keyframes come one at a time, drained at once (see _decode): decoder threads
                # would have nothing to overlap and cost CPU (~10%) and threads per camera.
                stream.codec_context.thread_count = 1
            self._freeze.reset()
            self._corrupt_reported = False
            skipping = False
            for packet in container.demux(stream):
                if self._stopping.is_set():
                    return
                if packet.is_keyframe:
                    # Decided before decoding: a group of pictures with no sample due goes
                    # undecoded (the first picture of a connection, or after an outage, never).
                    pts = time.monotonic() - self._started_at
                    was_skipping = skipping
                    skipping = self._may_skip() and self.plan.skip_group(pts)
                    if skipping and not was_skipping and not self.sampling.keyframes:
                        drain(stream.codec_context)  # held-back frames: none is due either
                elif skipping or self.sampling.keyframes:
                    self._check_dead()
                    continue  # no sample due in this group, or a NONKEY decoder drops it
                if skipping:
                    self._check_dead()
                    continue
                decode = functools.partial(self._decode, stream, packet)
                self._pictures(decode, stream.codec_context, began, "packet")
                self._check_dead()
        except (av.error.ExitError, av.error.TimeoutError) as exc:
            raise _StreamLost(f"no data for {self.read_timeout_s:g}s") from exc
        except av.error.FFmpegError as exc:
            raise _StreamLost(f"read failed: {exc}") from exc
        finally:
            container.close()

    def _pictures(
        self,
        decode: Callable[[], list[av.VideoFrame]],
        ctx: av.video.codeccontext.VideoCodecContext,
        began: float,
        what: str,
    ) -> None:
        """Takes what `decode` gives (the connection `began` then); a corrupt `what` is
        counted and skipped, reported once a connection, not once a packet."""
        try:
            pictures = decode()
        except av.error.InvalidDataError as exc:
            self.stats.decode_errors += 1
            if not self._corrupt_reported:
                self._corrupt_reported = True
                self._health("decode_error", f"corrupt {what}: {exc}")
            return
        for picture in pictures:
            if not self.connected or self.dead:
                self._on_picture(ctx, time.monotonic() - began)
            self._take(picture)

    def _may_skip(self) -> bool:
        """Pictures flow and skipping a group cannot make the camera look dead."""
        age = self.stats.last_frame_age_s
        return self.connected and not self.dead and age is not None and age < self.dead_after_s / 2

    def _decode(
        self, stream: av.video.stream.VideoStream, packet: av.Packet
    ) -> list[av.VideoFrame]:
        frames = packet.decode()
        if self.sampling.keyframes and packet.is_keyframe:
            # Alone, the decoder holds a frame back until later ones fill its reorder (B-frame)
            # and frame-thread queues; with keyframes only, that is two keyframes (4 s on a 2 s
            # GOP), unseen by the lag metric. Drained now, each keyframe comes out at once.
            frames += drain(stream.codec_context)
        return frames

    def _on_picture(self, ctx: av.video.codeccontext.VideoCodecContext, after_s: float) -> None:
        """The first picture of a connection, or the first after the camera was dead."""
        if not self.connected:
            self.connected = True
            self._connected_at = time.monotonic()
            self.stats.connects += 1
            self.stats.reconnects += self.stats.connects > 1
        self.dead = False
        self._health("connected", f"{ctx.name} {ctx.width}x{ctx.height}, {after_s:.1f}s to picture")

    def _take(self, vframe: av.VideoFrame) -> None:
        now = time.monotonic()
        wall = time.time()
        self.stats.decoded += 1
        self.stats.last_frame_at = now
        self._index += 1
        pts = max(now - self._started_at, self._last_pts + 1e-6)  # strictly increasing
        self._last_pts = pts
        if not self.plan.wants(pts):
            return  # skipping the BGR conversion is most of the saving
        self.plan.took(pts)
        self._watch_freeze(vframe, now)
        frame = Frame(self.camera_id, self._index, pts, vframe.to_ndarray(format="bgr24"), wall)
        with self._slot_lock:
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = frame
            self._slot_lock.notify()
        self.stats.produced += 1
        if self.on_sample is not None:
            self.on_sample()

    def _watch_freeze(self, vframe: av.VideoFrame, now: float) -> None:
        width, height = SIGNATURE_SIZE
        thumb = vframe.reformat(width=width, height=height, format="gray", interpolation="AREA")
        signature: np.ndarray = thumb.to_ndarray()
        changed = self._freeze.update(signature, now)
        if changed is True:
            self._health("frozen", f"picture unchanged for {self._freeze.after_s:g}s")
        elif changed is False:
            self._health("unfrozen")
