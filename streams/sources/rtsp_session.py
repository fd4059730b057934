"""StreetWatch's own RTSP client for the chunked receive path (streams/sources/chunked_rtsp.py):
one TCP connection per camera, the video's RTP interleaved on it.

    session = RtspSession("rtsp://user:pass@10.0.0.7/stream1", timeout_s=10.0)
    track = session.open()  # DESCRIBE, SETUP of the first video track, PLAY
    while count := session.receive_into(room, read_timeout_s): ...  # what the socket holds
    session.keepalive()  # every `session.keepalive_s`; its reply comes interleaved
    session.close()

DESCRIBE answers 401 with a challenge: the URL's credentials answer it (Digest, RFC 7616 with
MD5, preferred over Basic) on every later request. Only H.264 and H.265 are read
(`UnsupportedStream` otherwise: the caller receives such a camera another way).

Why not FFmpeg's RTSP demuxer: it reads each interleaved RTP packet in three unbuffered reads,
each behind a `poll` (~1,900 system calls a second for a 1080p camera, with the GIL taken
around each in a Python thread; benchmarks/RESULTS.md, section 4g); here a `recv` takes all
the socket holds, once a tenth of a second of the stream is there (SO_RCVLOWAT).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from streams.sources.health import HealthKind

USER_AGENT = "StreetWatch"
DEFAULT_SESSION_TIMEOUT_S = 60.0  # RFC 2326's default when the server names none
MAX_REPLY = 1 << 16  # an RTSP reply's head and body; beyond it the peer is no RTSP server
RECV_SIZE = 1 << 18  # bytes a `recv` may take: a 1080p keyframe is ~100-300 kB
CODECS = {"H264": "h264", "H265": "hevc"}  # SDP encoding name: FFmpeg's decoder
READ_EVERY_S = 0.1  # of the stream a read waits for: a keyframe is at most this late
PACE_EVERY_S = 2.0  # the stream's rate measured over this long
MAX_LOWAT = 1 << 17  # bytes


class RtspError(Exception):
    """The session failed; `kind` is the health event it makes (a camera that answers
    something other than RTSP is a decode error, one that cannot be reached a disconnect)."""

    def __init__(self, reason: str, kind: HealthKind = "disconnected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class UnsupportedStream(RtspError):
    """The camera's video is not H.264 or H.265, the URL is not plain rtsp://, or the camera
    redirects elsewhere."""


@dataclass(frozen=True, slots=True)
class VideoTrack:
    codec: str  # FFmpeg's decoder name: h264 or hevc
    payload_type: int
    control: str  # the URL SETUP names
    parameter_sets: tuple[bytes, ...] = ()  # from the SDP (sprop-*): NAL units, in order


@dataclass(slots=True)
class Reply:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


class RtspSession:
    """One RTSP session over TCP (see the module's doc). Not thread-safe, except
    `interrupt`, which any thread may call to end a blocked `receive`."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise UnsupportedStream(f"reads rtsp:// URLs only, not {parts.scheme or url!r}")
        self.host = parts.hostname
        self.port = parts.port or 554
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc += f":{parts.port}" if parts.port else ""
        self.url = urlunsplit(("rtsp", netloc, parts.path, parts.query, ""))  # no credentials
        self.username = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.timeout_s = timeout_s
        self.keepalive_s = DEFAULT_SESSION_TIMEOUT_S / 2
        self.channel = 0  # the interleaved channel of the video's RTP
        self._sock: socket.socket | None = None
        self._cseq = 0
        self._session: str | None = None
        self._challenge: dict[str, str] | None = None
        self._keepalive_method = "GET_PARAMETER"
        self._deadline = 0.0
        self._buffer = b""
        self._read_timeout_s: float | None = None  # set on the socket for `receive_into`
        self._paced_at = time.monotonic()
        self._paced_bytes = 0

    # -- opening -------------------------------------------------------------------------

    def open(self) -> VideoTrack:
        """Connects, sets up the first video track and starts it, within `timeout_s`."""
        self._deadline = time.monotonic() + self.timeout_s
        try:
            self._sock = socket.create_connection((self.host, self.port), self._left())
        except TimeoutError as exc:
            raise RtspError(f"no answer within {self.timeout_s:g}s") from exc
        except OSError as exc:
            raise RtspError(f"cannot open: {exc}") from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        described = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = described.header("Content-Base") or described.header("Content-Location")
        track = parse_sdp(described.body.decode(errors="replace"), base or self.url)
        setup = self._request(
            "SETUP", track.control, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        )
        session = setup.header("Session")
        if not session:
            raise RtspError("not a playable stream: SETUP's reply names no session", "decode_error")
        self._session, *params = [p.strip() for p in session.split(";")]
        for param in params:
            name, _, value = param.partition("=")
            if name.lower() == "timeout" and value.isdigit() and int(value) > 0:
                self.keepalive_s = max(1.0, int(value) / 2)
        interleaved = re.search(r"interleaved=(\d+)", setup.header("Transport") or "")
        self.channel = int(interleaved.group(1)) if interleaved else 0
        public = described.header("Public")  # rarely on DESCRIBE; OPTIONS is not asked
        if public and "GET_PARAMETER" not in public.upper():
            self._keepalive_method = "OPTIONS"
        self._request("PLAY", self.url, {"Range": "npt=0.000-"})
        return track  # what was read past PLAY's reply waits in the buffer for `receive_into`

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RtspError(f"no answer within {self.timeout_s:g}s")
        return left

    def _send(self, method: str, url: str, headers: dict[str, str]) -> None:
        assert self._sock is not None
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        if self._session is not None:
            lines.append(f"Session: {self._session}")
        if self._challenge is not None:
            lines.append(f"Authorization: {self._authorization(method, url)}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _request(self, method: str, url: str, headers: dict[str, str]) -> Reply:
        """Sends a request and reads its reply; a 401 is answered once with the URL's
        credentials. Raises RtspError for anything but a 2xx."""
        for attempt in range(2):
            self._send(method, url, headers)
            reply = self._reply(method)
            if reply.status != 401 or attempt or self._challenge is not None:
                break
            if not (self.username or self.password):
                raise RtspError(
                    f"cannot open: {method} answered 401 {reply.reason} (the URL gives no "
                    "credentials)"
                )
            self._challenge = _challenge(reply.headers.get("www-authenticate", []))
        if 300 <= reply.status < 400:
            raise UnsupportedStream(f"follows no redirect: {method} answered {reply.status}")
        if not 200 <= reply.status < 300:
            raise RtspError(f"cannot open: {method} answered {reply.status} {reply.reason}")
        return reply

    def _reply(self, method: str) -> Reply:
        """The next reply, skipping interleaved packets sent before it (a shared stream may
        already flow); what follows it stays in the buffer."""
        assert self._sock is not None
        while True:
            data = self._buffer
            if data[:1] == b"$":
                end = 4 + int.from_bytes(data[2:4], "big") if len(data) >= 4 else None
                if end is not None and len(data) >= end:
                    self._buffer = data[end:]
                    continue
            elif data and not b"RTSP/1.0".startswith(data[:8]):
                shown = data[:40].decode(errors="replace").splitlines()[0]
                raise RtspError(
                    f"not a playable stream: {method} answered {shown!r}", "decode_error"
                )
            elif (head_end := data.find(b"\r\n\r\n")) >= 0:
                reply = _parse_head(data[:head_end].decode(errors="replace"), method)
                end = head_end + 4 + int(reply.header("Content-Length") or 0)
                if end > MAX_REPLY:
                    raise RtspError(
                        f"not a playable stream: {method}'s reply is too long", "decode_error"
                    )
                if len(data) >= end:
                    reply.body, self._buffer = data[head_end + 4 : end], data[end:]
                    return reply
            if len(data) > MAX_REPLY:
                raise RtspError(
                    f"not a playable stream: {method}'s reply has no end", "decode_error"
                )
            self._sock.settimeout(self._left())
            self._read_timeout_s = None
            try:
                chunk = self._sock.recv(RECV_SIZE)
            except TimeoutError as exc:
                raise RtspError(f"no answer within {self.timeout_s:g}s") from exc
            except OSError as exc:
                raise RtspError(f"cannot open: {exc}") from exc
            if not chunk:
                raise RtspError(f"cannot open: the camera closed the connection at {method}")
            self._buffer += chunk

    def _authorization(self, method: str, url: str) -> str:
        challenge = self._challenge
        assert challenge is not None
        if challenge["scheme"] == "basic":
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {token}"
        realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")

        def md5(text: str) -> str:
            return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

        ha1 = md5(f"{self.username}:{realm}:{self.password}")
        ha2 = md5(f"{method}:{url}")
        fields = {"username": self.username, "realm": realm, "nonce": nonce, "uri": url}
        qops = [q.strip() for q in challenge.get("qop", "").split(",")]
        if "auth" in qops:
            cnonce, count = os.urandom(8).hex(), f"{self._cseq:08x}"
            fields |= {"qop": "auth", "nc": count, "cnonce": cnonce}
            fields["response"] = md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
        else:
            fields["response"] = md5(f"{ha1}:{nonce}:{ha2}")
        if "opaque" in challenge:
            fields["opaque"] = challenge["opaque"]
        unquoted = {"qop", "nc"}
        return "Digest " + ", ".join(
            f"{k}={v}" if k in unquoted else f'{k}="{v}"' for k, v in fields.items()
        )

    # -- playing -------------------------------------------------------------------------

    def receive_into(self, room: memoryview, timeout_s: float) -> int:
        """Reads what the socket holds into `room` (waiting up to `timeout_s` for something);
        0 once the camera closed the connection. Raises RtspError on a timeout or a socket
        error. The wait is the kernel's (SO_RCVTIMEO on a blocking socket): one system call a
        read, where Python's own timeout adds a `poll` before each."""
        sock = self._sock
        assert sock is not None
        if self._buffer:  # read past PLAY's reply
            taken = min(len(room), len(self._buffer))
            room[:taken] = self._buffer[:taken]
            self._buffer = self._buffer[taken:]
            return taken
        if timeout_s != self._read_timeout_s:
            seconds, fraction = divmod(timeout_s, 1.0)
            timeval = struct.pack("ll", int(seconds), int(fraction * 1e6))
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            self._read_timeout_s = timeout_s
        try:
            count = sock.recv_into(room)
        except (BlockingIOError, TimeoutError) as exc:
            raise RtspError(f"no data for {timeout_s:g}s") from exc
        except OSError as exc:
            raise RtspError(f"read failed: {exc}") from exc
        self._pace(count)
        return count

    def _pace(self, count: int) -> None:
        """Has the kernel wake the reader once READ_EVERY_S of the stream is there
        (SO_RCVLOWAT; a read's timeout still returns what came), not for every segment:
        from the bytes a second this connection has been sending."""
        now = time.monotonic()
        self._paced_bytes += count
        if now - self._paced_at < PACE_EVERY_S:
            return
        rate = self._paced_bytes / (now - self._paced_at)
        lowat = int(min(max(rate * READ_EVERY_S, 1), MAX_LOWAT))
        if self._sock is not None:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
        self._paced_at, self._paced_bytes = now, 0

    def keepalive(self) -> None:
        """Tells the camera the session is alive; the reply comes between the packets."""
        try:
            self._send(self._keepalive_method, self.url, {})
        except OSError as exc:
            raise RtspError(f"read failed: {exc}") from exc

    def interrupt(self) -> None:
        """Ends a blocked `receive` from another thread (at stop)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # not connected, or already shut
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Says TEARDOWN if playing (not waiting for the answer) and closes the socket."""
        sock = self._sock
        if sock is None:
            return
        if self._session is not None:
            with contextlib.suppress(OSError):  # the camera may be gone already
                sock.settimeout(0.5)
                self._send("TEARDOWN", self.url, {})
        self._sock = None
        sock.close()


def _parse_head(text: str, method: str) -> Reply:
    status_line, *lines = text.split("\r\n")
    match = re.match(r"RTSP/1\.0 (\d{3}) ?(.*)", status_line)
    if match is None:
        raise RtspError(
            f"not a playable stream: {method} answered {status_line[:40]!r}", "decode_error"
        )
    reply = Reply(int(match.group(1)), match.group(2).strip())
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            reply.headers.setdefault(name.strip().lower(), []).append(value.strip())
    return reply


def _challenge(headers: list[str]) -> dict[str, str]:
    """The strongest challenge offered: Digest (MD5) over Basic."""
    offered: dict[str, dict[str, str]] = {}
    for header in headers:
        scheme, _, rest = header.partition(" ")
        pairs = re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', rest)
        params = {name.lower(): quoted or bare for name, quoted, bare in pairs}
        offered[scheme.lower()] = {"scheme": scheme.lower(), **params}
    digest = offered.get("digest")
    if digest is not None and digest.get("algorithm", "MD5").upper() == "MD5":
        return digest
    if "basic" in offered:
        return offered["basic"]
    raise RtspError(f"cannot open: no authentication it offers is supported ({headers})")


def parse_sdp(sdp: str, base: str) -> VideoTrack:
    """The first H.264 or H.265 video track of a session description; raises
    UnsupportedStream for a video in another codec, RtspError for none at all."""
    media: list[list[str]] = []
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
    videos = [m for m in media if m[0].startswith("m=video")]
    if not videos:
        raise RtspError("no video stream", "decode_error")
    names = []
    for lines in videos:
        formats = lines[0].split()[3:]
        maps = dict(re.findall(r"a=rtpmap:(\d+) ([\w.-]+)/", "\n".join(lines)))
        for pt in formats:
            name = maps.get(pt, "").upper()
            names.append(name or f"payload type {pt}")
            if name in CODECS:
                return VideoTrack(
                    CODECS[name], int(pt), _control(lines, base), _parameter_sets(lines, pt)
                )
    raise UnsupportedStream(f"reads H.264 and H.265 only, the camera sends {', '.join(names)}")


def _control(lines: list[str], base: str) -> str:
    control = next((ln[len("a=control:") :] for ln in lines if ln.startswith("a=control:")), "*")
    if control.startswith("rtsp://"):
        return control
    if control == "*":
        return base
    return base + ("" if base.endswith("/") else "/") + control


def _parameter_sets(lines: list[str], pt: str) -> tuple[bytes, ...]:
    """The SDP's parameter sets (H.264 sprop-parameter-sets; H.265 sprop-vps, -sps, -pps)."""
    fmtp = next((ln for ln in lines if ln.startswith(f"a=fmtp:{pt} ")), "")
    params = dict(
        p.strip().partition("=")[::2] for p in fmtp.partition(" ")[2].split(";") if "=" in p
    )
    found = []
    for name in ("sprop-parameter-sets", "sprop-vps", "sprop-sps", "sprop-pps"):
        for value in filter(None, params.get(name, "").split(",")):
            try:
                found.append(base64.b64decode(value + "=" * (-len(value) % 4)))
            except (binascii.Error, ValueError):
                continue  # a broken one: the stream's own, in band, may do
    return tuple(found)
