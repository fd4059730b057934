"""Decoding on hardware where FFmpeg has it: the config's `worker.decode` turned into the
PyAV `HWAccel` every camera is opened with, or None (decode on the CPU, as by default).

A device type is tried by opening it once at start, not at each camera's connection: an
FFmpeg built with CUDA support on a machine without a GPU lists `cuda` but cannot open it,
and a camera whose every open failed that way would look dead. What decodes, and why not
the hardware asked for, is said once, at start.
"""

from __future__ import annotations

import av
import av.error
from av.codec.hwaccel import HWAccel, hwdevices_available

from streams.config import Decode

AUTO: tuple[Decode, ...] = ("cuda", "vaapi", "qsv", "videotoolbox")
PROBE_CODEC = "h264"  # what cameras send; a device that opens for it opens for HEVC too


def hardware_decoding(asked: Decode) -> tuple[HWAccel | None, str]:
    """The HWAccel to open cameras with (None: the CPU) and a line saying what decodes."""
    if asked == "cpu":
        return None, "decoding on the CPU"
    have = set(hwdevices_available())
    reasons = []
    for kind in AUTO if asked == "auto" else (asked,):
        if kind not in have:
            reasons.append(f"this FFmpeg has no {kind} support")
            continue
        accel = HWAccel(device_type=kind, allow_software_fallback=True)
        try:
            context = av.CodecContext.create(PROBE_CODEC, "r", hwaccel=accel)  # opens it
        except av.error.FFmpegError as exc:
            reasons.append(f"no {kind} device opens ({exc.strerror})")
            continue
        if not context.is_hwaccel:  # e.g. qsv: FFmpeg decodes it with another decoder
            reasons.append(f"FFmpeg's {PROBE_CODEC} decoder does not decode on {kind}")
            continue
        return accel, f"decoding on {kind} ({asked} asked)"
    return None, f"{asked} decoding asked, {'; '.join(reasons)}: decoding on the CPU"
