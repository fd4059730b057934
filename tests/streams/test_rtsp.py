"""RtspSource against real loopback RTSP cameras playing real footage; faults injected with
signals (kill, SIGSTOP) and tiny misbehaving TCP servers. No mocks.

The tests of faults and health run on every receive path (`receiver`): PyAV in the process,
an ffmpeg child passing keyframes (FfmpegRtspSource) and StreetWatch's own RTSP client reading
in chunks (ChunkedRtspSource), the last two with keyframe sampling."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import av
import pytest

from api.client.backoff import Backoff
from streams.sources.chunked_rtsp import ChunkedRtspSource
from streams.sources.ffmpeg_rtsp import FfmpegRtspSource
from streams.sources.health import HealthEvent
from streams.sources.rtp import KeyframeDepacketizer
from streams.sources.rtsp import RtspSource
from streams.sources.rtsp_session import RtspSession
from streams.sources.sampling import Sampling
from tests.support.children import receiving
from tests.support.testcam import RtspServer

FAST_RETRY = Backoff(initial_s=0.2, max_s=1.0)
MARGIN_S = 1.0  # scheduling slack on a busy 2-core machine


class Events:
    """Collects health events; tests wait for a kind to arrive."""

    def __init__(self) -> None:
        self.events: list[HealthEvent] = []
        self.arrived = threading.Condition()

    def __call__(self, event: HealthEvent) -> None:
        with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def wait_for(self, kind: str, timeout: float, since: int = 0) -> HealthEvent:
        """The first `kind` event at or after position `since`; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [e for e in self.events[since:] if e.kind == kind]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {kind!r} within {timeout}s; got {self.kinds()}")
                self.arrived.wait(left)

    def mark(self) -> int:
        return len(self.events)


RECEIVERS = ["pyav", "ffmpeg", "chunked"]
KEYFRAME_RECEIVERS = {"ffmpeg": FfmpegRtspSource, "chunked": ChunkedRtspSource}


@pytest.fixture(params=RECEIVERS)
def receiver(request: pytest.FixtureRequest) -> str:
    return request.param


def camera(url: str, events: Events, receiver: str = "pyav", **options: object) -> RtspSource:
    options = {"open_timeout_s": 4.0, "read_timeout_s": 2.0, "backoff": FAST_RETRY} | options
    if receiver == "pyav":
        return RtspSource("cam", url, on_health=events, **options)  # type: ignore[arg-type]
    sampling = options.pop("sampling", Sampling(keyframes=True))
    source = KEYFRAME_RECEIVERS[receiver]
    return source("cam", url, sampling, on_health=events, **options)  # type: ignore[arg-type]


def wait_frame(source: RtspSource, timeout: float = 10.0):
    frame = source.latest(timeout)
    assert frame is not None, f"no frame within {timeout}s"
    return frame


@pytest.fixture(scope="module")
def street(rtsp_server_deps: None, vtest_avi: Path) -> Iterator[RtspServer]:
    """A healthy camera, shared by the tests that don't break it: 10 fps, a keyframe a second."""
    with RtspServer({"street": vtest_avi}, keyint=10) as server:
        yield server


@pytest.fixture
def own_street(rtsp_server_deps: None, vtest_avi: Path) -> Iterator[RtspServer]:
    """A camera a test may kill or freeze."""
    with RtspServer({"street": vtest_avi}, keyint=10) as server:
        yield server


def test_frames_arrive_with_monotonic_pts_and_wall_time(receiver: str, street: RtspServer) -> None:
    events = Events()
    frames = []
    wanted = 20 if receiver == "pyav" else 4  # every frame, or a keyframe a second
    for frame in camera(street.url("street"), events, receiver).frames():
        frames.append(frame)
        if len(frames) == wanted:
            break
    assert [e.kind for e in events.events][:1] == ["connected"]
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert all(b.pts > a.pts for a, b in pairwise(frames))
    assert all(b.index > a.index for a, b in pairwise(frames))
    assert all(b.wall_time >= a.wall_time for a, b in pairwise(frames))
    assert abs(frames[-1].wall_time - time.time()) < 2.0


def test_the_ffmpeg_receiver_runs_one_ffmpeg_child_and_ends_it_at_stop(street: RtspServer) -> None:
    url = street.url("street")
    with camera(url, Events(), "ffmpeg") as source:
        wait_frame(source)
        assert receiving(os.getpid(), url) == 1  # not PyAV in this process
    assert receiving(os.getpid(), url) == 0


def test_keyframe_mode_decodes_about_one_frame_per_keyint(
    receiver: str, street: RtspServer
) -> None:
    events = Events()
    with camera(
        street.url("street"), events, receiver, sampling=Sampling(keyframes=True)
    ) as source:
        wait_frame(source)
        before = source.stats.decoded
        time.sleep(4.0)  # four keyframe intervals at 10 fps, keyint 10
        decoded = source.stats.decoded - before
    assert 3 <= decoded <= 5


def test_fps_sampling_keeps_that_many_frames_per_second(street: RtspServer) -> None:
    events = Events()
    with camera(street.url("street"), events, sampling=Sampling(fps=2.0)) as source:
        wait_frame(source)
        decoded, produced = source.stats.decoded, source.stats.produced
        time.sleep(3.0)
        decoded, produced = source.stats.decoded - decoded, source.stats.produced - produced
    assert 20 <= decoded <= 40  # every frame is decoded ...
    assert 5 <= produced <= 7  # ... but only 2 a second are kept


def test_slow_consumer_gets_the_latest_frame_and_stale_ones_are_dropped(
    street: RtspServer,
) -> None:
    events = Events()
    with camera(street.url("street"), events) as source:
        wait_frame(source)
        for _ in range(3):
            time.sleep(1.0)  # a consumer far slower than 10 fps
            frame = wait_frame(source)
            assert time.time() - frame.wall_time < 0.5  # fresh, not a second old
        stats = source.stats
        assert stats.dropped >= 20
        assert stats.produced - stats.delivered - stats.dropped in (0, 1)  # 1: in the slot


def test_reconnects_after_the_server_restarts_on_the_same_port(
    receiver: str, own_street: RtspServer
) -> None:
    events = Events()
    with camera(own_street.url("street"), events, receiver) as source:
        before = wait_frame(source)
        mark = events.mark()
        own_street.kill()
        events.wait_for("disconnected", timeout=2.0 + MARGIN_S, since=mark)
        events.wait_for("reconnecting", timeout=1.0, since=mark)
        time.sleep(1.0)  # a second of outage: retries hit a closed port
        own_street.restart()
        restarted = time.monotonic()
        events.wait_for("connected", timeout=10.0, since=mark)
        recovery_s = time.monotonic() - restarted
        after = wait_frame(source)
    assert source.stats.reconnects == 1
    assert after.pts > before.pts and after.index > before.index
    assert recovery_s < 1.0 + 4.0  # one capped backoff + one open


def test_stalled_server_times_out_within_the_bound_and_recovers(
    receiver: str, own_street: RtspServer
) -> None:
    events = Events()
    with camera(own_street.url("street"), events, receiver, read_timeout_s=2.0) as source:
        wait_frame(source)
        mark = events.mark()
        own_street.freeze()
        frozen_at = time.monotonic()
        lost = events.wait_for("disconnected", timeout=2.0 + MARGIN_S, since=mark)
        assert "no data" in lost.detail
        assert time.monotonic() - frozen_at <= 2.0 + MARGIN_S
        time.sleep(1.0)  # reconnect attempts meet a frozen server: the open times out
        own_street.thaw()
        events.wait_for("connected", timeout=15.0, since=mark)
        wait_frame(source)


def test_stop_returns_promptly_while_a_read_is_blocked(
    receiver: str, own_street: RtspServer
) -> None:
    source = camera(own_street.url("street"), Events(), receiver, read_timeout_s=2.0)
    source.start()
    wait_frame(source)
    own_street.freeze()
    time.sleep(0.5)  # the decode thread is now blocked reading a silent socket
    began = time.monotonic()
    source.stop()
    assert time.monotonic() - began <= 2.0 + MARGIN_S
    own_street.thaw()


def test_closed_port_reports_reconnecting_then_dead(receiver: str, rtsp_server_deps: None) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events = Events()
    source = camera(f"rtsp://127.0.0.1:{port}/none", events, receiver, dead_after_s=1.5)
    with source:
        retry = events.wait_for("reconnecting", timeout=2.0)
        assert "refused" in retry.detail.lower()
        events.wait_for("dead", timeout=1.5 + MARGIN_S)
        assert source.latest(0.1) is None
    assert source.stats.failed_connects >= 2 and source.stats.connects == 0


def serve_tcp(reply: bytes | None) -> tuple[socket.socket, int]:
    """A loopback TCP server that answers every request with `reply` (None: never answers)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # listener closed: the test is over
            with conn:
                conn.settimeout(5.0)
                try:
                    conn.recv(4096)
                    if reply is not None:
                        conn.sendall(reply)
                    conn.recv(4096)  # hold the connection until the client gives up
                except OSError:
                    pass

    threading.Thread(target=answer, daemon=True).start()
    return listener, listener.getsockname()[1]


class DribblingProxy:
    """A loopback TCP proxy in front of a camera; once `dribble` is set, the camera's bytes
    reach the client one every 0.2 s (a read never completes, yet never goes silent)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.dribble = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed: the test is over
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_camera: bool) -> None:
        try:
            while data := src.recv(65536):
                while data and from_camera and self.dribble.is_set():
                    dst.sendall(data[:1])
                    data = data[1:]
                    time.sleep(0.2)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            src.close()
            dst.close()

    def close(self) -> None:
        self.listener.close()


def test_camera_dribbling_bytes_is_reported_dead_and_recovers(
    receiver: str, own_street: RtspServer
) -> None:
    # A read that trickles never trips a per-read socket timeout; the camera must still be
    # reported dead on time (by whoever asks for its pictures) and come back once it flows.
    proxy = DribblingProxy(own_street.port)
    events = Events()
    source = camera(f"rtsp://127.0.0.1:{proxy.port}/street", events, receiver, dead_after_s=3.0)
    try:
        source.start()
        wait_frame(source)
        proxy.dribble.set()
        dribbling_at = time.monotonic()
        mark = events.mark()
        while "dead" not in events.kinds()[mark:]:
            source.latest(0.2)  # the worker's loop asks every camera like this
            assert time.monotonic() - dribbling_at <= 3.0 + MARGIN_S, events.kinds()
        proxy.dribble.clear()
        events.wait_for("connected", timeout=15.0, since=mark)
        wait_frame(source)
    finally:
        proxy.dribble.clear()
        source.stop()
        proxy.close()


def test_camera_that_sends_garbage_reports_decode_error(
    receiver: str, rtsp_server_deps: None
) -> None:
    listener, port = serve_tcp(b"\x00\xff\x13garbage\r\n" * 100)
    events = Events()
    with listener, camera(f"rtsp://127.0.0.1:{port}/cam", events, receiver) as source:
        error = events.wait_for("decode_error", timeout=3.0)
        assert "not a playable stream" in error.detail
        assert source.latest(0.1) is None


def test_camera_that_never_answers_times_out_on_open(receiver: str, rtsp_server_deps: None) -> None:
    listener, port = serve_tcp(None)
    events = Events()
    with listener, camera(f"rtsp://127.0.0.1:{port}/cam", events, receiver, open_timeout_s=2.0):
        began = time.monotonic()
        retry = events.wait_for("reconnecting", timeout=2.0 + MARGIN_S)
        assert "no answer" in retry.detail
        assert time.monotonic() - began <= 2.0 + MARGIN_S
        assert "decode_error" not in events.kinds()


@pytest.mark.parametrize("kind", ["json", "audio"])
def test_url_that_is_not_a_video_reports_decode_error(
    receiver: str, rtsp_server_deps: None, tmp_path: Path, kind: str
) -> None:
    if kind == "json":
        url = tmp_path / "camera.json"
        url.write_text('{"not": "a video"}')
        expected = "not a playable stream"
    else:
        url = tmp_path / "tone.wav"
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(url)],
            check=True,
        )
        expected = "no video stream"
    events = Events()
    with camera(str(url), events, receiver):
        error = events.wait_for("decode_error", timeout=3.0)
    assert expected in error.detail
    assert "connected" not in events.kinds()


def test_frozen_picture_is_reported_and_moving_street_is_not(
    receiver: str, rtsp_server_deps: None, vtest_avi: Path, still_clip: Path
) -> None:
    still_events, street_events = Events(), Events()
    with (
        RtspServer({"still": still_clip, "street": vtest_avi}) as server,
        camera(server.url("still"), still_events, receiver, freeze_after_s=2.0) as still,
        camera(server.url("street"), street_events, receiver, freeze_after_s=2.0) as street,
    ):
        frozen = still_events.wait_for("frozen", timeout=10.0)
        assert "unchanged" in frozen.detail
        assert still.connected
        wait_frame(street)
        time.sleep(1.0)  # the street has had as long as the still picture
    assert "frozen" not in street_events.kinds()


def test_picture_that_moves_again_is_reported_unfrozen(
    receiver: str, rtsp_server_deps: None, still_then_moving_clip: Path
) -> None:
    events = Events()
    with (
        RtspServer({"cam": still_then_moving_clip}, keyint=10) as server,  # ffmpeg: 1 a second
        camera(server.url("cam"), events, receiver, freeze_after_s=2.0),
    ):
        events.wait_for("frozen", timeout=8.0)
        events.wait_for("unfrozen", timeout=5.0)


@pytest.mark.parametrize("method", ["basic", "digest"])
def test_the_urls_credentials_answer_the_cameras_challenge_and_are_never_reported(
    receiver: str, rtsp_server_deps: None, vtest_avi: Path, method: str
) -> None:
    """A camera that asks for credentials plays with the right ones (in the URL, the
    password's "@" escaped) and is refused with wrong ones; neither password is ever in a
    health event (they reach the API and its console)."""
    with RtspServer(
        {"cam": vtest_avi}, keyint=10, auth="viewer:s3cr@t", auth_method=method
    ) as server:
        good = server.url("cam").replace("rtsp://", "rtsp://viewer:s3cr%40t@")
        bad = server.url("cam").replace("rtsp://", "rtsp://viewer:wr0ng-pw@")
        events, refused = Events(), Events()
        with camera(good, events, receiver) as source, camera(bad, refused, receiver) as other:
            wait_frame(source)
            retry = refused.wait_for("reconnecting", timeout=5.0)
            assert "401" in retry.detail or "unauthorized" in retry.detail.lower(), retry.detail
            assert other.latest(0.5) is None
    details = " ".join(e.detail for e in events.events + refused.events)
    assert not any(secret in details for secret in ("s3cr@t", "s3cr%40t", "wr0ng-pw"))


def test_the_chunked_receiver_reads_h265_whose_parameter_sets_are_only_in_the_sdp(
    rtsp_server_deps: None, vtest_avi: Path
) -> None:
    """x265 sends its parameter sets once, before the first keyframe; a keyframe taken
    later decodes with the SDP's."""
    events = Events()
    with (
        RtspServer({"cam": vtest_avi}, keyint=10, codec="h265") as server,
        camera(server.url("cam"), events, "chunked") as source,
    ):
        frames = [wait_frame(source) for _ in range(4)]  # a keyframe a second
    assert events.kinds() == ["connected"] and events.events[0].detail.startswith("hevc 320x240")
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert source.stats.decode_errors == 0


def test_the_chunked_receiver_keeps_the_session_alive_and_reads_past_the_replies(
    rtsp_server_deps: None, vtest_avi: Path
) -> None:
    """A camera whose sessions time out after 2 s: a keepalive every second, each reply
    interleaved with the packets, and the keyframes go on undisturbed."""
    events = Events()
    with (
        RtspServer({"cam": vtest_avi}, keyint=10, session_timeout_s=2) as server,
        camera(server.url("cam"), events, "chunked") as source,
    ):
        assert isinstance(source, ChunkedRtspSource)
        wait_frame(source)
        began, taken = time.monotonic(), 0
        while time.monotonic() - began < 6.0:
            taken += source.latest(1.5) is not None
        keepalives = source.keepalives
    assert keepalives >= 4
    assert taken >= 4  # a keyframe a second, on a loaded machine a little fewer
    assert events.kinds() == ["connected"]


def test_the_chunked_receiver_hands_what_it_cannot_read_to_pyav(vtest_avi: Path) -> None:
    """Not rtsp:// (here a recording): PyAV receives it, and the source says why."""
    events = Events()
    source = camera(str(vtest_avi), events, "chunked")
    assert isinstance(source, ChunkedRtspSource)
    with source:
        wait_frame(source)
    assert source.by_pyav is not None and "rtsp://" in source.by_pyav
    assert events.kinds()[:1] == ["connected"]


def test_keyframes_come_out_whole_however_the_stream_is_cut_and_not_when_a_packet_is_lost(
    street: RtspServer,
) -> None:
    """Three seconds of a real camera's interleaved stream, as StreetWatch's RTSP client reads
    it, fed to the keyframe depacketiser in reads of every size: the same keyframes each
    time, and they decode; without one packet of a keyframe, that keyframe is dropped."""
    session = RtspSession(street.url("street"), 5.0)
    track = session.open()
    stream = bytearray()
    room = memoryview(bytearray(1 << 16))
    began = time.monotonic()
    while time.monotonic() - began < 3.5:
        stream += room[: session.receive_into(room, 2.0)]
    session.close()

    def keyframes(data: bytes, size: int) -> tuple[list[bytes], KeyframeDepacketizer]:
        frames = KeyframeDepacketizer(
            track.codec, track.payload_type, session.channel, track.parameter_sets
        )
        found = [k for at in range(0, len(data), size) for k in frames.feed(data[at : at + size])]
        return found, frames

    whole, _ = keyframes(bytes(stream), len(stream))
    assert len(whole) >= 3  # a keyframe a second
    for size in (1, 13, 1400, 65536):
        assert keyframes(bytes(stream), size)[0] == whole
    decoder = av.CodecContext.create(track.codec, "r")
    for keyframe in whole:
        (picture,) = decoder.decode(av.Packet(keyframe)) + decoder.decode(None)
        decoder.flush_buffers()
        assert (picture.width, picture.height) == (320, 240)

    # The second keyframe's first packet, cut out of the stream: that keyframe is dropped.
    second, at = whole[1], 0
    while at < len(stream):
        assert stream[at] == 0x24  # "$": the client's stream holds nothing but packets
        length = int.from_bytes(stream[at + 2 : at + 4], "big")
        payload = bytes(stream[at + 16 : at + 4 + length])  # past the RTP header
        if len(payload) > 100 and payload[2:] in second:
            break
        at += 4 + length
    lost, frames = keyframes(bytes(stream[:at] + stream[at + 4 + length :]), 4096)
    assert frames.skipped == 1 and second not in lost and len(lost) == len(whole) - 1
