"""Where frames come from: video files and their keyframe spans (`files`), live RTSP
cameras with reconnects and freeze detection (`rtsp`, `health`; `ffmpeg_rtsp` receives a
keyframe-sampled one in an ffmpeg child, `chunked_rtsp` with StreetWatch's own RTSP client,
`rtsp_session`, and keyframe depacketiser, `rtp`), what a camera samples and
when (`sampling`), decoding on hardware where there is some (`hwdecode`), recordings named
by camera and start time (`recordings`), and decoding ahead of inference (`prefetch`).

May import `streams.config`, `detector`, `api.contract`, `api.client.backoff`; never
`streams.camera`, `streams.live`, `streams.offline` or `streams.cli`.
"""

__all__ = [
    "chunked_rtsp",
    "ffmpeg_rtsp",
    "files",
    "health",
    "hwdecode",
    "prefetch",
    "recordings",
    "rtp",
    "rtsp",
    "rtsp_session",
    "sampling",
]
