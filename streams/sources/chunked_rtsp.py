"""Live camera source whose RTSP session is StreetWatch's own, read in chunks, keyframes only.

    source = ChunkedRtspSource("cam-7", "rtsp://10.0.0.7/stream1", Sampling(keyframes=True))

The same source as `RtspSource` (health events, reconnects with backoff, the sample plan,
freeze and dead detection, `latest()`), for keyframe-sampled cameras, with FFmpeg's RTSP
demuxer replaced: the camera's thread reads whatever its socket holds once a tenth of a second
of the stream is there (by design about ten reads a second, where FFmpeg's demuxer makes
~1,900 system calls; streams/sources/rtsp_session.py), keeps the keyframes' RTP
packets (streams/sources/rtp.py) and hands each keyframe whole to PyAV's decoder when a sample
is due. Nothing but the plan decides what is decoded, as on the PyAV path.

A camera it cannot read (not rtsp://, video in another codec than H.264 and H.265, or an answer
this client does not understand) is received by PyAV instead, from then on, said once in the
log; the URL's credentials answer Basic and Digest challenges. Timeouts: opening (connect,
DESCRIBE, SETUP, PLAY) within `open_timeout_s`, each read within `read_timeout_s`; `stop()`
shuts the socket, so a blocked read ends at once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

import av
import av.error

from streams.sources.files import drain
from streams.sources.rtp import KeyframeDepacketizer
from streams.sources.rtsp import RtspSource, _StreamLost
from streams.sources.rtsp_session import RtspError, RtspSession, UnsupportedStream, VideoTrack
from streams.sources.sampling import Sampling

log = logging.getLogger(__name__)


class ChunkedRtspSource(RtspSource):
    """A keyframe-sampled live camera read by StreetWatch's own RTSP client (the module's doc)."""

    keyframes_only = "chunked"

    def __init__(self, camera_id: str, url: str, sampling: Sampling, **options: object) -> None:
        super().__init__(camera_id, url, sampling, **options)  # type: ignore[arg-type]
        self._session_lock = threading.Lock()
        self._session: RtspSession | None = None
        self.by_pyav: str | None = None  # why PyAV receives this camera instead, if it does
        self.keepalives = 0  # sent, all connections

    def stop(self, wait: bool = True) -> None:
        self._stopping.set()
        with self._session_lock:
            if self._session is not None:
                self._session.interrupt()  # the thread's blocked recv returns at once
        super().stop(wait)

    # -- decode thread -------------------------------------------------------------------

    def _connection(self) -> None:
        if self.by_pyav is not None:
            super()._connection()
            return
        began = time.monotonic()
        try:
            session = RtspSession(self.url, self.open_timeout_s)
        except UnsupportedStream as exc:
            self._to_pyav(exc.reason)
            return
        with self._session_lock:
            self._session = session
        try:
            if self._stopping.is_set():
                return
            try:
                track = session.open()
            except RtspError as exc:
                if not isinstance(exc, UnsupportedStream) and exc.kind != "decode_error":
                    raise  # unreachable, refused, timed out: PyAV would fare no better
                session.close()  # it answered, but not as this client understands
                self._to_pyav(exc.reason)
                return
            self._receive(session, track, began)
        except RtspError as exc:
            raise _StreamLost(exc.reason, exc.kind) from exc
        finally:
            with self._session_lock:
                self._session = None
            session.close()

    def _to_pyav(self, reason: str) -> None:
        self.by_pyav = reason
        log.warning("camera %s: received by PyAV: the chunked receiver %s", self.camera_id, reason)
        super()._connection()

    def _receive(self, session: RtspSession, track: VideoTrack, began: float) -> None:
        """Reads the session until it ends; raises RtspError or _StreamLost."""
        ctx = av.CodecContext.create(track.codec, "r", hwaccel=self.hwaccel)
        ctx.thread_count = 1  # one keyframe at a time, drained at once: threads overlap nothing
        keyframes = KeyframeDepacketizer(
            track.codec, track.payload_type, session.channel, track.parameter_sets
        )
        self._freeze.reset()
        self._corrupt_reported = False
        keepalive_at = time.monotonic() + session.keepalive_s
        while not self._stopping.is_set():
            count = session.receive_into(keyframes.room(), self.read_timeout_s)
            if not count:
                return  # the camera closed the connection
            for keyframe in keyframes.received(count):
                # Decided before decoding: a keyframe with no sample due goes undecoded (the
                # first picture of a connection, or after an outage, never).
                if self._may_skip() and self.plan.skip_group(time.monotonic() - self._started_at):
                    continue
                decode = functools.partial(_decode, ctx, av.Packet(keyframe))
                self._pictures(decode, ctx, began, "keyframe")
            if keyframes.garbage and not self.connected:
                raise _StreamLost("not a playable stream: no RTP after PLAY", "decode_error")
            self._check_dead()
            if time.monotonic() >= keepalive_at:
                session.keepalive()
                self.keepalives += 1
                keepalive_at = time.monotonic() + session.keepalive_s


def _decode(ctx: av.video.codeccontext.VideoCodecContext, packet: av.Packet) -> list[av.VideoFrame]:
    """A keyframe's picture, drained at once (the decoder would hold it back for the next)."""
    return ctx.decode(packet) + drain(ctx)
