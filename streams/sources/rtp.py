"""Keyframes out of an RTSP connection's interleaved stream: RTP over TCP (RFC 2326 10.12),
H.264 (RFC 6184) or H.265 (RFC 7798) depacketised, only what a keyframe needs kept.

    frames = KeyframeDepacketizer("h264", payload_type=96, channel=0, parameter_sets=sps_pps)
    while count := sock.recv_into(frames.room()):
        for keyframe in frames.received(count):
            decoder.decode(av.Packet(keyframe))  # Annex B, parameter sets first

Every packet is looked at (its header, its NAL unit type), but only the keyframes' NAL units
(IDR or IRAP pictures, and parameter sets) are copied and joined; the rest of a GOP is passed
over where it lies in the buffer, which the socket reads into directly. A picture that lost a
packet (a gap in the sequence numbers) is dropped, not handed to the decoder half-made. A
keyframe without parameter sets of its own gets the SDP's. RTSP messages between packets
(keepalive replies) are skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"
MAX_KEYFRAME = 16 << 20  # bytes; beyond it the stream is not what it says
BUFFER_SIZE = 1 << 20  # bytes read ahead; an interleaved frame is at most 64 KiB
RTP_HEADER = struct.Struct("!BBHI")  # V/P/X/CC, M/PT, sequence number, timestamp


@dataclass(frozen=True, slots=True)
class Nal:
    """One codec's NAL unit types as the depacketiser needs them."""

    header_size: int  # bytes of a NAL unit header
    fragment_type: int  # the mask of a fragment header's type bits
    aggregate: int  # STAP-A / AP
    fragment: int  # FU-A / FU
    key: frozenset[int]  # picture types that start a keyframe
    parameter_sets: frozenset[int]
    sps: int

    def type_of(self, byte: int) -> int:
        return byte & 0x1F if self.header_size == 1 else (byte >> 1) & 0x3F


H264 = Nal(1, 0x1F, 24, 28, frozenset({5}), frozenset({7, 8}), 7)
H265 = Nal(2, 0x3F, 48, 49, frozenset(range(16, 22)), frozenset({32, 33, 34}), 33)
NALS = {"h264": H264, "hevc": H265}


def _unwrap(buffer: bytearray, first: int, header: int, end: int) -> tuple[int, int]:
    """The payload's bounds past an extension header and without padding."""
    if first & 0x10 and header + 4 <= end:
        header += 4 + 4 * ((buffer[header + 2] << 8) | buffer[header + 3])
    if first & 0x20:  # its length in the last byte
        end -= buffer[end - 1]
    return header, end


class KeyframeDepacketizer:
    """One connection's keyframes (see the module's doc); `skipped` counts the keyframes
    dropped for a lost packet, `garbage` the bytes that were neither RTP nor RTSP.

    The stream is read into the depacketiser's own buffer (`room`, then `received`), so a
    `recv` allocates nothing; `feed` copies bytes in."""

    def __init__(
        self, codec: str, payload_type: int, channel: int, parameter_sets: tuple[bytes, ...] = ()
    ) -> None:
        self.nal = NALS[codec]
        self.payload_type = payload_type
        self.channel = channel
        self.parameter_sets = parameter_sets
        self.skipped = 0
        self.garbage = 0
        self._buffer = bytearray(BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._timestamp: int | None = None  # the picture being read
        self._units: list[bytes | bytearray] = []  # its key and parameter-set NAL units
        self._key = False
        self._broken = False
        self._fragment: bytearray | None = None  # a key NAL unit being reassembled
        self._next_seq: int | None = None

    def room(self) -> memoryview:
        """Where the next bytes of the stream go (then say how many: `received`)."""
        return self._view[self._filled :]

    def feed(self, data: bytes) -> list[bytes]:
        """The keyframes that `data` completed, in Annex B."""
        done: list[bytes] = []
        while data:
            room = self.room()
            taken = min(len(room), len(data))
            room[:taken] = data[:taken]
            data = data[taken:]
            done += self.received(taken)
        return done

    def received(self, count: int) -> list[bytes]:
        """The keyframes completed by `count` more bytes in `room`, in Annex B."""
        buffer = self._buffer
        size = self._filled + count
        at = 0
        done: list[bytes] = []
        nal = self.nal
        channel, payload_type, header_size = self.channel, self.payload_type, nal.header_size
        fragment, fragment_type, wanted = (
            nal.fragment,
            nal.fragment_type,
            nal.key | nal.parameter_sets,
        )
        # This loop runs once per RTP packet (~300 a second for a 1080p camera): plain
        # indexing, and most packets (fragments of other pictures) go no further than the
        # type of the NAL unit they carry a piece of.
        while size - at >= 4:
            if buffer[at] != 0x24:  # "$"
                skip = self._message(buffer, at, size)
                if skip is None:
                    break
                at = skip
                continue
            start = at + 4
            end = start + ((buffer[at + 2] << 8) | buffer[at + 3])
            if end > size:
                break
            at = end
            if buffer[start - 3] != channel or end - start < 12:
                continue
            first, second, seq, timestamp = RTP_HEADER.unpack_from(buffer, start)
            if first >> 6 != 2 or second & 0x7F != payload_type:
                continue  # not RTP version 2, or another payload
            if seq != self._next_seq and self._next_seq is not None:
                self._broken = True
            self._next_seq = (seq + 1) & 0xFFFF
            if timestamp != self._timestamp:
                self._finish(done)
                self._timestamp = timestamp
            header = start + 12 + 4 * (first & 0x0F)
            if first & 0x30:  # an extension header, or padding
                header, end = _unwrap(buffer, first, header, end)
            if header + header_size < end and (
                nal.type_of(buffer[header]) != fragment
                or self._fragment is not None
                or buffer[header + header_size] & fragment_type in wanted
            ):
                self._payload(buffer, header, end)
            if second & 0x80:  # the marker: the picture's last packet
                self._finish(done)
        left = size - at
        if at and left:  # the partial packet moves to the front
            buffer[:left] = buffer[at:size]
        self._filled = left
        if left == len(buffer):  # a buffer full without a whole frame: not this stream's
            self.garbage += left
            self._filled = 0
        return done

    def _message(self, buffer: bytearray, at: int, size: int) -> int | None:
        """Where the RTSP message (a keepalive's reply) at `at` ends, None if it is not all
        here yet; garbage up to the next "$" is skipped (and counted)."""
        if buffer.startswith(b"RTSP/", at, size) or b"RTSP/".startswith(buffer[at:size]):
            head_end = buffer.find(b"\r\n\r\n", at, size)
            if head_end < 0:
                return None if size - at < 1 << 16 else self._resync(buffer, at, size)
            head = bytes(buffer[at:head_end]).lower()
            length = head.partition(b"content-length:")[2].split(b"\r\n")[0].strip()
            end = head_end + 4 + (int(length) if length.isdigit() else 0)
            return end if end <= size else None
        return self._resync(buffer, at, size)

    def _resync(self, buffer: bytearray, at: int, size: int) -> int:
        found = buffer.find(b"$", at + 1, size)
        end = found if found >= 0 else size
        self.garbage += end - at
        self._broken = True
        return end

    def _payload(self, buffer: bytearray, header: int, end: int) -> None:
        nal = self.nal
        kind = nal.type_of(buffer[header])
        if kind == nal.fragment:
            fu = header + nal.header_size
            inner = buffer[fu] & nal.fragment_type
            if inner not in nal.key and inner not in nal.parameter_sets:
                return
            self._key = self._key or inner in nal.key
            if buffer[fu] & 0x80:  # the first fragment: the NAL unit's header rebuilt
                if nal.header_size == 1:
                    unit = bytearray((buffer[header] & 0xE0 | inner,))
                else:
                    unit = bytearray((buffer[header] & 0x81 | inner << 1, buffer[header + 1]))
                self._fragment = unit
                self._units.append(unit)
            elif self._fragment is None:
                self._broken = True  # its start was lost
                return
            self._fragment += buffer[fu + 1 : end]
            if len(self._fragment) > MAX_KEYFRAME:
                self._broken = True
            if buffer[fu] & 0x40:  # the last fragment
                self._fragment = None
        elif kind == nal.aggregate:
            at = header + nal.header_size
            while at + 2 < end:
                size = (buffer[at] << 8) | buffer[at + 1]
                self._unit(buffer, at + 2, min(at + 2 + size, end))
                at += 2 + size
        elif kind < nal.aggregate:
            self._unit(buffer, header, end)

    def _unit(self, buffer: bytearray, start: int, end: int) -> None:
        kind = self.nal.type_of(buffer[start])
        if kind in self.nal.key:
            self._key = True
        elif kind not in self.nal.parameter_sets:
            return
        self._units.append(bytes(buffer[start:end]))

    def _finish(self, done: list[bytes]) -> None:
        """The picture read so far is complete: kept if a whole keyframe."""
        if self._key and not self._broken and self._fragment is None:
            units = self._units
            if not any(self.nal.type_of(u[0]) == self.nal.sps for u in units):
                units = [*self.parameter_sets, *units]
            done.append(b"".join(START_CODE + unit for unit in units))
        elif self._key:
            self.skipped += 1
        self._units = []
        self._key = self._broken = False
        self._fragment = None
