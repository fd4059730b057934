"""Checking that uploaded evidence really is an image, before anything costly is done with it.

The structure is walked first (JPEG markers, PNG chunks): the dimensions come from the
header, so a file declaring more than the pixel limit is refused before a decoder allocates
anything for it (a 333-byte JPEG can declare 50000x50000), and bytes after the image's end
(HTML, a zip, another file) are refused. Only then is the image decoded, to prove it is one.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

JPEG = "image/jpeg"
PNG = "image/png"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
# Far beyond what encoders write (a progressive JPEG has about ten scans, libpng writes one
# IDAT per 8 KiB), and low enough that walking or decoding a crafted file stays cheap: each
# progressive scan is another pass over the whole image.
MAX_SCANS = 64
MAX_SEGMENTS = 50_000


class ImageError(ValueError):
    """Why the bytes are not an acceptable image."""


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int


def _jpeg(data: bytes) -> tuple[int, int]:
    size: tuple[int, int] | None = None
    pos = 2  # after SOI
    n = len(data)
    scans = segments = 0
    while True:
        segments += 1
        if segments > MAX_SEGMENTS:
            raise ImageError(f"the JPEG has more than {MAX_SEGMENTS} segments")
        if pos + 2 > n or data[pos] != 0xFF:
            raise ImageError("the JPEG is truncated or its markers are corrupt")
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker are allowed
            pos += 1
        if pos >= n:
            raise ImageError("the JPEG is truncated")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            if size is None:
                raise ImageError("the JPEG has no frame header")
            if pos != n:
                raise ImageError(f"the JPEG has {n - pos} bytes of other data after its end")
            return size
        if marker in _STANDALONE:
            continue
        if marker in (0x00, 0xD8):
            raise ImageError("the JPEG's markers are corrupt")
        if pos + 2 > n:
            raise ImageError("the JPEG is truncated")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > n:
            raise ImageError("the JPEG is truncated or a segment length is wrong")
        if marker in _SOF:
            if length < 8:
                raise ImageError("the JPEG frame header is too short")
            height, width = struct.unpack_from(">HH", data, pos + 3)
            if size is not None:
                raise ImageError("the JPEG has more than one frame header")
            size = (width, height)
        pos += length
        if marker == 0xDA:  # SOS: entropy-coded data follows, up to the next real marker
            scans += 1
            if scans > MAX_SCANS:
                raise ImageError(f"the JPEG has more than {MAX_SCANS} scans")
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    raise ImageError("the JPEG is truncated (no end marker)")
                following = data[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    pos += 1 if following == 0xFF else 2  # stuffing, restart, or fill
                    continue
                break


def _png(data: bytes) -> tuple[int, int]:
    pos = len(_PNG_SIGNATURE)
    n = len(data)
    size: tuple[int, int] | None = None
    first = True
    chunks = 0
    while True:
        chunks += 1
        if chunks > MAX_SEGMENTS:
            raise ImageError(f"the PNG has more than {MAX_SEGMENTS} chunks")
        if pos + 12 > n:
            raise ImageError("the PNG is truncated (no IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > n:
            raise ImageError("the PNG is truncated or a chunk length is wrong")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) != crc:
            raise ImageError(f"the PNG chunk {kind!r} fails its CRC")
        if first:
            if kind != b"IHDR" or length != 13:
                raise ImageError("the PNG does not start with its IHDR header")
            size = struct.unpack_from(">II", body, 0)
            first = False
        pos = end
        if kind == b"IEND":
            if pos != n:
                raise ImageError(f"the PNG has {n - pos} bytes of other data after its end")
            assert size is not None
            return size


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
    """The image's type and size from its structure; raises ImageError. Decodes nothing."""
    if data.startswith(b"\xff\xd8\xff"):
        media_type, (width, height) = JPEG, _jpeg(data)
    elif data.startswith(_PNG_SIGNATURE):
        media_type, (width, height) = PNG, _png(data)
    else:
        raise ImageError("it is not a JPEG or PNG image")
    if width <= 0 or height <= 0:
        raise ImageError(f"the image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            f"the image declares {width}x{height} pixels, over the limit of {max_pixels}"
        )
    return ImageInfo(media_type, width, height)


def check_image(data: bytes, max_pixels: int) -> ImageInfo:
    """`inspect`, then a real decode (at a quarter of the size): raises ImageError."""
    info = inspect(data, max_pixels)
    import cv2  # the service's dependency; loaded only when evidence is checked
    import numpy as np

    try:
        # A reduced-size decode still walks the whole file, at a fraction of the memory.
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise ImageError("it does not decode")
    return info
