"""The live worker end to end: loopback RTSP cameras, the real API, the real model.

The worker runs as its own process (`streetwatch run`), so it can be killed with SIGKILL
and stopped with SIGTERM like in production.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.client.outbox import Outbox
from api.server.settings import Settings
from models.cache import HOME_ENV, home
from tests.support.api import RunningServer, run_server
from tests.support.children import receiving
from tests.support.scenes import BUS_CROP, Sprite, crop, render, video_frames
from tests.support.testcam import RtspServer, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BAY = [[380, 380], [767, 380], [767, 560], [380, 560]]
RULES = {"illegal_parking": {"dwell_s": 4, "clear_s": 6, "occlusion_s": 3}}
READ_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def parked_clip(tmp_path_factory, bus_jpg, vtest_avi, rtsp_server_deps) -> Path:
    """Real street footage with the bus of bus.jpg parked in the bay the whole time."""
    bus = Sprite(crop(bus_jpg, BUS_CROP, 300)).parked(0, 10, (420, 300))
    return render(
        tmp_path_factory.mktemp("live") / "parked.mp4", video_frames(vtest_avi), 10, 10, [bus]
    )


@pytest.fixture(scope="module")
def empty_clip(tmp_path_factory, vtest_avi, rtsp_server_deps) -> Path:
    """The same street with nothing parked in the bay."""
    return render(tmp_path_factory.mktemp("live") / "empty.mp4", video_frames(vtest_avi), 10, 10)


@pytest.fixture
def street(parked_clip) -> Iterator[RtspServer]:
    with RtspServer({"cam": parked_clip}, fps=10, width=768, height=576, keyint=10) as server:
        yield server


class Worker:
    """`streetwatch run` in a subprocess, with its metrics endpoint."""

    def __init__(self, config: Path, state: Path, key: str, args: Sequence[str] = ()) -> None:
        """args: more options of `run` (e.g. --processes)."""
        self.config, self.state, self.key, self.args = config, state, key, list(args)
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self) -> None:
        env = os.environ | {
            "STREETWATCH_API_KEY": self.key,
            HOME_ENV: str(home()),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--config", str(self.config),
             "--state-dir", str(self.state), "--metrics-port", str(self.metrics_port),
             "--health-port", str(self.health_port),
             "--open-timeout", "4", "--read-timeout", str(READ_TIMEOUT_S), *self.args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log.append(line.rstrip())

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels`; 0 if none."""
        return sum(self.series(name, **labels))

    def series(self, name: str, **labels: str) -> list[float]:
        """The values of the samples called `name` whose labels include `labels`."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return []
        return [
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()
        ]

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.signal(signal.SIGKILL)

    def health(self) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5)

    def pending(self, state: Path | None = None) -> int:
        """Items waiting in the outbox of `state` (default the worker's state directory)."""
        box = Outbox((state or self.state) / "outbox.sqlite3")
        try:
            return box.counts()["outbox"]
        finally:
            box.close()


def write_config(path: Path, api_url: str, cameras: dict[str, str], receive: str = "pyav") -> Path:
    """receive: ffmpeg and chunked sample every keyframe (all those paths pass), pyav 2
    frames a second."""
    sample = {"fps": 2} if receive == "pyav" else {"keyframes": True}
    path.write_text(
        yaml.safe_dump(
            {
                "model": "default",
                "rules": RULES,
                "api": {"url": api_url},
                "worker": {"receive": receive},
                "cameras": [
                    {
                        "id": cam_id,
                        "source": url,
                        "location": {"lat": 26.58, "lon": 101.72, "grid": "510402001001"},
                        "sample": sample,
                        "zones": [{"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}],
                    }
                    for cam_id, url in cameras.items()
                ],
            }
        )
    )
    return path


def cases(server: RunningServer, key: str) -> list[dict]:
    response = httpx.get(
        f"{server.url}/v1/cases", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    response.raise_for_status()
    return response.json()["items"]


@pytest.fixture
def worker_factory(tmp_path, default_model) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def make(config: Path, key: str, state: Path | None = None, args: Sequence[str] = ()) -> Worker:
        worker = Worker(config, state or tmp_path / "state", key, args)
        worker.start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()


def junk_camera() -> tuple[int, threading.Event]:
    """A TCP server on loopback that answers anything with garbage, like a broken camera."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"\x00\xffGARBAGE\r\n" * 64)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], stop


@pytest.mark.parametrize("receive", ["pyav", "ffmpeg", "chunked"])
def test_parked_vehicle_is_one_case_through_camera_faults(
    street, worker_factory, tmp_path, receive
):
    junk_port, junk_stop = junk_camera()
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = write_config(
            tmp_path / "config.yaml",
            server.url,
            {
                "cam-good": street.url("cam"),
                "cam-dead": f"rtsp://127.0.0.1:{free_port()}/nothing",
                "cam-junk": f"rtsp://127.0.0.1:{junk_port}/stream",
            },
            receive,
        )
        worker = worker_factory(config, key)
        wait_until(lambda: cases(server, key), 90, "the parked bus's case")
        assert worker.process is not None
        assert receiving(worker.process.pid, street.url("cam")) == (receive == "ffmpeg")

        # The broken cameras report health events; the good one is unaffected.
        wait_until(
            lambda: worker.metric("streetwatch_health_events_total", camera="cam-dead"),
            30,
            "a health event for the dead camera",
        )
        wait_until(
            lambda: worker.metric("streetwatch_health_events_total", camera="cam-junk"),
            30,
            "a health event for the junk camera",
        )
        assert any("cam-dead" in line and "reconnecting" in line for line in worker.log)

        # Camera killed and restarted: the worker reconnects and carries on.
        street.kill()
        time.sleep(1)
        street.restart()
        wait_until(
            lambda: worker.metric("streetwatch_reconnects_total", camera="cam-good") >= 1,
            40,
            "a reconnect after the camera restarted",
        )
        before = worker.metric("streetwatch_samples_processed_total", camera="cam-good")
        wait_until(
            lambda: (
                worker.metric("streetwatch_samples_processed_total", camera="cam-good") > before + 4
            ),
            30,
            "samples after the reconnect",
        )

        # Camera frozen (SIGSTOP): the read times out within the bound, then it recovers.
        street.freeze()
        frozen_at = time.monotonic()
        wait_until(
            lambda: (
                worker.metric(
                    "streetwatch_health_events_total", camera="cam-good", kind="disconnected"
                )
                >= 2
            ),
            READ_TIMEOUT_S + 10,
            "the frozen camera's read timeout",
        )
        assert time.monotonic() - frozen_at <= READ_TIMEOUT_S + 6
        street.thaw()
        wait_until(
            lambda: worker.metric("streetwatch_reconnects_total", camera="cam-good") >= 2,
            40,
            "a reconnect after the camera thawed",
        )

        # SIGTERM: a clean stop that hands open incidents to the outbox and drains it.
        assert worker.signal(signal.SIGTERM) == 0, "\n".join(worker.log[-30:])
        assert worker.pending() == 0
        assert not list((tmp_path / "state" / "evidence").glob("*.jpg"))  # the API has them
        (case,) = cases(server, key)
        assert case["type"] == "illegal_parking" and case["camera_id"] == "cam-good"
        assert case["report_count"] == 1
        assert case["location"]["grid"] == "510402001001"
        assert {e["kind"] for e in case["evidence"]} >= {"first_seen", "confirmed"}
    junk_stop.set()


def test_api_outage_and_kill_9_lose_nothing_post_nothing_twice_and_the_case_clears(
    street, empty_clip, worker_factory, tmp_path
):
    """The operator's fault run: the API is down across the confirmation, the worker is
    killed with the case in its outbox and restarted, then the bus leaves. One case, one
    report (the restarted worker continues the incident instead of confirming it again),
    cleared, with its evidence."""
    api_port = free_port()
    state = tmp_path / "state"
    settings = Settings(data_dir=tmp_path / "api")
    # A key made before the API is up: the worker starts against a dead API.
    with run_server(settings, port=free_port()) as bootstrap:
        key = bootstrap.create_key("ingest", "dispatch")
    config = write_config(
        tmp_path / "config.yaml", f"http://127.0.0.1:{api_port}", {"cam-1": street.url("cam")}
    )
    worker = worker_factory(config, key, state)
    wait_until(worker.pending, 90, "the confirmed case queued in the outbox")
    worker.signal(signal.SIGKILL)  # between enqueue and delivery

    with run_server(settings, port=api_port) as server:
        restarted = worker_factory(config, key, state)
        wait_until(lambda: cases(server, key), 30, "the queued case delivered after restart")
        wait_until(
            lambda: any("resumed 1 open sites (1 reported" in line for line in restarted.log),
            30,
            "the restarted worker resuming the incident",
        )
        before = restarted.metric("streetwatch_samples_processed_total", camera="cam-1")
        wait_until(
            lambda: (
                restarted.metric("streetwatch_samples_processed_total", camera="cam-1")
                > before + 2 * RULES["illegal_parking"]["dwell_s"] * 2
            ),
            40,
            "samples for twice the dwell after resuming",
        )
        assert restarted.metric("streetwatch_incidents_total", event="confirmed") == 0

        # The bus leaves: the camera now shows the empty street.
        street.stop()
        street.mounts = {"cam": empty_clip}
        street.restart()
        wait_until(lambda: cases(server, key)[0]["cleared_at"], 90, "the case cleared once empty")
        wait_until(lambda: restarted.pending() == 0, 30, "the outbox to drain")
        assert restarted.signal(signal.SIGTERM) == 0
        (case,) = cases(server, key)
        assert case["report_count"] == 1
        assert {e["kind"] for e in case["evidence"]} >= {"first_seen", "confirmed", "cleared"}
        # The report reached the API once: a second post would count as a replay (same
        # key) or a merge (a known report id under another key).
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'streetwatch_reports_total{outcome="created"} 1.0' in metrics
        assert 'outcome="merged"' not in metrics
        assert 'outcome="replayed"' not in metrics


def test_reload_adds_and_removes_cameras_without_restart(street, worker_factory, tmp_path):
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = write_config(tmp_path / "config.yaml", server.url, {"cam-a": street.url("cam")})
        worker = worker_factory(config, key)
        wait_until(lambda: worker.metric("streetwatch_cameras") == 1, 60, "one camera running")
        wait_until(
            lambda: worker.metric("streetwatch_samples_produced_total", camera="cam-a") >= 6,
            60,
            "cam-a's first samples",
        )
        # The source's own counter: a restarted camera would start again from zero.
        produced_a = worker.metric("streetwatch_samples_produced_total", camera="cam-a")
        write_config(config, server.url, {"cam-a": street.url("cam"), "cam-b": street.url("cam")})
        worker.process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: worker.metric("streetwatch_samples_processed_total", camera="cam-b"),
            60,
            "cam-b started by the reload",
        )
        assert worker.metric("streetwatch_samples_produced_total", camera="cam-a") > produced_a
        produced_a = worker.metric("streetwatch_samples_produced_total", camera="cam-a")
        # A broken edit is refused and the cameras carry on.
        config.write_text("cameras: [")
        worker.process.send_signal(signal.SIGHUP)
        wait_until(lambda: any("reload refused" in line for line in worker.log), 20, "the refusal")
        wait_until(
            lambda: (
                worker.metric("streetwatch_samples_produced_total", camera="cam-a") > produced_a
            ),
            20,
            "cam-a still producing after the refused reload",
        )
        write_config(config, server.url, {"cam-b": street.url("cam")})
        worker.process.send_signal(signal.SIGHUP)
        wait_until(lambda: worker.metric("streetwatch_cameras") == 1, 20, "cam-a removed")
        assert worker.metric("streetwatch_samples_produced_total", camera="cam-a") == 0  # gone
        assert worker.metric("streetwatch_samples_processed_total", camera="cam-a") == 0
        assert worker.signal(signal.SIGTERM) == 0


def test_reload_applies_rules_and_zones_in_place_and_pauses_nobody(
    street, worker_factory, tmp_path
):
    """Editing one camera's zones and a rule neither restarts the cameras' streams nor
    resets an open incident; removing a camera makes no other camera wait for it."""
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        cams = {"cam-a": street.url("cam"), "cam-b": street.url("cam")}
        config = write_config(tmp_path / "config.yaml", server.url, cams)
        worker = worker_factory(config, key)
        confirmed = {"event": "confirmed"}
        wait_until(
            lambda: worker.metric("streetwatch_incidents_total", **confirmed) == 2,
            90,
            "the parked bus confirmed on both cameras",
        )
        produced = worker.metric("streetwatch_samples_produced_total", camera="cam-a")

        edited = yaml.safe_load(config.read_text())
        edited["rules"]["illegal_parking"]["clear_s"] = 8  # a rule parameter
        edited["cameras"][1]["zones"].append(  # and a zone on cam-b only
            {"id": "kerb", "polygon": [[0, 380], [370, 380], [370, 560], [0, 560]],
             "checks": ["illegal_parking"]}
        )  # fmt: skip
        config.write_text(yaml.safe_dump(edited))
        worker.process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: any("settings applied, 1 open sites continue" in line for line in worker.log),
            20,
            "cam-a's runtime rebuilt with its incident",
        )
        wait_until(
            lambda: (
                worker.metric("streetwatch_samples_produced_total", camera="cam-a") > produced + 4
            ),
            20,
            "cam-a producing on",
        )
        # The stream was not restarted (its counter kept growing from where it was), and the
        # open incident continued: not confirmed again.
        assert worker.metric("streetwatch_samples_produced_total", camera="cam-a") > produced
        assert worker.metric("streetwatch_incidents_total", camera="cam-a", **confirmed) == 1
        assert worker.metric("streetwatch_reconnects_total", camera="cam-a") == 0

        # Removing cam-b while its camera is frozen: its read timeout runs in the background.
        street.freeze()
        time.sleep(1)
        write_config(config, server.url, {"cam-a": street.url("cam")})
        worker.process.send_signal(signal.SIGHUP)
        removed_at = time.monotonic()
        wait_until(lambda: worker.metric("streetwatch_cameras") == 1, 10, "cam-b removed")
        assert time.monotonic() - removed_at < READ_TIMEOUT_S
        street.thaw()
        assert worker.signal(signal.SIGTERM) == 0
        # Each camera's one confirmation reached the API once, and nothing else did.
        assert sum(c["report_count"] for c in cases(server, key)) == 2


def test_the_live_worker_delivers_the_dwell_strip(street, empty_clip, worker_factory, tmp_path):
    """A live camera's strip (detector/strip.py): five thumbnails from first seen to
    confirmation go with the report, the later ones with the clearing; each 320 pixels wide
    with the bus's box in its own pixels."""
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = write_config(tmp_path / "config.yaml", server.url, {"cam-1": street.url("cam")})
        worker = worker_factory(config, key)
        wait_until(lambda: cases(server, key), 90, "the parked bus reported")
        (case,) = cases(server, key)
        first_seen, confirmed = (
            datetime.fromisoformat(case[k]) for k in ("first_seen", "confirmed_at")
        )
        strip = dwell_strip(case)
        # Dwell 4 s: at 0, 1, 2, 3 and 4 s of observed dwell, the first sample at or past each.
        times = [datetime.fromisoformat(e["captured_at"]) for e in strip]
        assert len(times) == 5
        assert times[0] == first_seen and times[-1] == confirmed
        offsets = [(t - first_seen).total_seconds() for t in times]
        assert all(k <= s < k + 0.6 for k, s in enumerate(offsets)), offsets
        sent_first = strip

        # Parked on for more than twice the dwell, then gone: the rest of the strip comes
        # with the clearing.
        before = worker.metric("streetwatch_samples_processed_total", camera="cam-1")
        wait_until(
            lambda: (
                worker.metric("streetwatch_samples_processed_total", camera="cam-1")
                > before + 2 * RULES["illegal_parking"]["dwell_s"] * 2
            ),
            40,
            "samples for twice the dwell after confirmation",
        )
        street.stop()
        street.mounts = {"cam": empty_clip}
        street.restart()
        wait_until(lambda: cases(server, key)[0]["cleared_at"], 90, "the case cleared once empty")
        wait_until(lambda: worker.pending() == 0, 30, "the outbox to drain")
        (case,) = cases(server, key)
        strip = dwell_strip(case)
        later = [datetime.fromisoformat(e["captured_at"]) for e in strip[5:]]
        assert [e["sha256"] for e in strip[:5]] == [e["sha256"] for e in sent_first]
        # Kept evenly spread over the dwell after confirmation: two or three of them (never
        # more than the strip's 8 in all) on a grid of 1 s after confirmation, doubled each
        # time a fourth fell due; each the first sample (2 a second) at or past its point.
        assert 2 <= len(later) <= 3, later
        assert later[-1] <= datetime.fromisoformat(case["last_seen"])
        offsets = [(t - confirmed).total_seconds() for t in later]
        assert any(
            all(i * step <= s <= i * step + 1.0 for i, s in enumerate(offsets, 1))
            for step in (1, 2, 4, 8, 16)
        ), offsets
        for e in strip:
            assert (e["width"], e["height"]) == (320, 240)
            assert e["report_id"] == case["report_ids"][0]
            (box,) = e["boxes"]
            x1, y1, x2, y2 = box["bbox"]
            # The bus parked at (420, 300), 300 pixels wide, in the 768 x 576 frame.
            scale = 320 / 768
            assert abs(x1 - 420 * scale) < 10 and abs(x2 - 720 * scale) < 10, box
            assert y1 > 280 * scale and y2 < 576 * scale
        assert worker.signal(signal.SIGTERM) == 0


def dwell_strip(case: dict) -> list[dict]:
    return sorted(
        (e for e in case["evidence"] if e["kind"] == "dwell"),
        key=lambda e: datetime.fromisoformat(e["captured_at"]),
    )
