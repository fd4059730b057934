"""Frame sources: decode video with PyAV, sample it, and stamp each frame with media time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from detector.types import Frame
from streams.sources.sampling import SamplePlan, Sampling

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source that cannot be opened or read at all (missing file, not a video, no stream)."""

    def __init__(self, camera_id: str, message: str) -> None:
        super().__init__(f"camera {camera_id}: {message}")
        self.camera_id = camera_id


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of a file from one keyframe up to the next span's: decoding it alone gives
    the frames, indices and samples a decode of the whole file gives there. Times in the
    stream's ticks; `seed_pts` is the media time of the frame just before the span, which
    primes the sampler as the whole-file pass would have it."""

    start_ticks: int
    end_ticks: int | None  # exclusive; None: to the end
    first_index: int  # frames before the span
    seed_pts: float | None


def drain(ctx: av.video.codeccontext.VideoCodecContext) -> list[av.VideoFrame]:
    """The frames the decoder holds back (B-frame reordering, frame threads); it then starts
    afresh at the next keyframe."""
    frames = ctx.decode(None)
    ctx.flush_buffers()
    return frames


def configure_decoder(stream: av.video.stream.VideoStream, sampling: Sampling) -> None:
    stream.thread_type = "AUTO"  # frame + slice threads: ~1.6x on full decode
    if sampling.keyframes:
        stream.codec_context.skip_frame = "NONKEY"


class FileSource:
    """A recorded video file, decoded as fast as the machine allows."""

    def __init__(
        self,
        camera_id: str,
        path: str | Path,
        sampling: Sampling = Sampling(),
        plan: SamplePlan | None = None,
        span: Span | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.path = Path(path)
        self.sampling = sampling
        self.span = span
        self.plan = plan or SamplePlan(sampling)
        self.corrupt_packets = 0  # packets the decoder rejected and we skipped

    def _open(self) -> av.container.InputContainer:
        if not self.path.is_file():
            raise SourceError(self.camera_id, f"no such file: {self.path}")
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(self.camera_id, f"cannot open {self.path}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(self.camera_id, f"{self.path} has no video stream")
        return container

    def duration_s(self) -> float | None:
        """Media duration if the container says, for progress bars."""
        with self._open() as container:
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
        return None

    def frames(self) -> Iterator[Frame]:
        container = self._open()
        plan = self.plan
        try:
            stream = container.streams.video[0]
            configure_decoder(stream, self.sampling)
            ctx = stream.codec_context
            start = stream.start_time or 0
            time_base = float(stream.time_base) if stream.time_base else 0.0
            rate = float(stream.average_rate) if stream.average_rate else 25.0
            index = -1
            skipping = False
            span = self.span
            if span is not None:
                container.seek(span.start_ticks, stream=stream, backward=True)
                index = span.first_index - 1
                if span.seed_pts is not None:
                    plan.took(span.seed_pts)  # as the whole-file pass left it there
            for packet in container.demux(stream):
                decoded: list[av.VideoFrame] = []
                if packet.is_keyframe and packet.pts is not None and time_base:
                    was_skipping = skipping
                    skipping = plan.skip_group((packet.pts - start) * time_base)
                    if skipping and not was_skipping:
                        decoded = drain(ctx)  # held-back frames, from before this keyframe
                undecodable = self.sampling.keyframes and not packet.is_keyframe
                if not (skipping or (undecodable and packet.size)):
                    try:
                        decoded += packet.decode()
                    except av.error.InvalidDataError:
                        self.corrupt_packets += 1
                        continue
                    if self.sampling.keyframes and packet.is_keyframe:
                        decoded += drain(ctx)  # so a keyframe never waits for the next one
                for vframe in decoded:
                    if span is not None:
                        if vframe.pts is None or vframe.pts < span.start_ticks:
                            continue  # an open GOP's leading frames: the span before's
                        if span.end_ticks is not None and vframe.pts >= span.end_ticks:
                            return
                    index += 1
                    pts = (
                        (vframe.pts - start) * time_base
                        if vframe.pts is not None and time_base
                        else index / rate
                    )
                    if not plan.wants(pts):
                        continue  # skipping the BGR conversion is most of the saving
                    plan.took(pts)
                    yield Frame(
                        camera_id=self.camera_id,
                        # Skipped frames leave gaps: number frames from media time.
                        index=round(pts * rate),
                        pts=pts,
                        image=vframe.to_ndarray(format="bgr24"),
                    )
        except av.error.FFmpegError as exc:
            raise SourceError(self.camera_id, f"error reading {self.path}: {exc}") from exc
        finally:
            container.close()
        if self.corrupt_packets:
            log.warning(
                "camera %s: skipped %d corrupt packets in %s",
                self.camera_id,
                self.corrupt_packets,
                self.path,
            )
