"""A long file cut at keyframes into spans whose detections are inferred in parallel.

Only inference is cut: the motion gate, the tracker, the static-object stage's background
models and the site rules carry state from frame to frame (a background is a running
average over every earlier frame), so no span can start them as the whole-file pass would
without that pass's history. They run afterwards, once over the whole file in order, on the
detections the spans inferred (`score_camera(inferred=...)`): the result is exactly the
single pass's, and the part that is costly (inference, most of a frame's cost) runs in
parallel. The price is decoding the file twice.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import av
import av.error

from detector.motion import Submits, detect_stream
from detector.types import Detections
from streams.camera.runtime import sampling_for
from streams.config import CameraConfig
from streams.sources.files import FileSource, SourceError, Span


def plan_spans(camera: CameraConfig, chunk_s: float) -> list[Span]:
    """Spans of at least `chunk_s` seconds of media, each starting at a keyframe; one span
    (the whole file) when the file is shorter, or its packets lack timestamps."""
    path = Path(camera.source)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(camera.id, f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise SourceError(camera.id, f"{path} has no video stream")
        stream = container.streams.video[0]
        if not stream.time_base:
            return [Span(0, None, 0, None)]
        start = stream.start_time or 0
        time_base = float(stream.time_base)
        ticks: list[int] = []
        keys: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's flush packet
                if packet.pts is None:
                    return [Span(0, None, 0, None)]
                ticks.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise SourceError(camera.id, f"error reading {path}: {exc}") from exc
    ticks.sort()  # presentation order, as the decoder hands frames out
    cuts: list[int] = []
    last = start
    for key in sorted(keys):
        if (key - last) * time_base >= chunk_s and (ticks[-1] - key) * time_base >= chunk_s / 2:
            cuts.append(key)
            last = key
    spans = []
    bounds = [ticks[0] if ticks else 0, *cuts]
    for n, begin in enumerate(bounds):
        before = bisect.bisect_left(ticks, begin)
        seed = (ticks[before - 1] - start) * time_base if n and before else None
        end = bounds[n + 1] if n + 1 < len(bounds) else None
        spans.append(Span(begin, end, before if n else 0, seed))
    return spans


def detect_span(camera: CameraConfig, span: Span, engine: Submits) -> dict[int, Detections]:
    """Detections of every frame the whole-file pass samples within `span`, by index."""
    source = FileSource(camera.id, camera.source, sampling_for(camera), span=span)
    return {frame.index: dets for frame, dets in detect_stream(engine, source.frames())}
