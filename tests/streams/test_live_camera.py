"""A live camera and the sinks it publishes to, in process: real footage of a bus parked in a
bay, the real model, the real runtime, outbox, site store, metrics and health reporter. The
test plays the worker's loop: it decodes the clip and hands each sample's detections to the
camera, as the worker hands it each settled batch."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import yaml

from api.client import IntakeClient
from api.server.settings import Settings
from detector.engine import Engine
from streams.camera.engines import engine_for, labels_of
from streams.camera.evidence import EvidenceWriter
from streams.camera.runtime import CameraRuntime, sampling_for
from streams.camera.site_store import SiteStore
from streams.config import Config, load_config
from streams.live.live_camera import Backlog, CameraContext, LiveCamera
from streams.live.live_events import (
    Bus,
    IncidentCleared,
    IncidentConfirmed,
    SampleSettled,
    SitesChanged,
)
from streams.live.metrics import WorkerMetrics
from streams.live.sinks import Sinks
from streams.sources.files import FileSource
from streams.sources.rtsp import RtspSource
from tests.streams.test_worker import cases
from tests.support.api import run_server
from tests.support.scenes import BUS_CROP, Sprite, crop, render, video_frames

BAY = [[380, 380], [767, 380], [767, 560], [380, 560]]


@pytest.fixture(scope="module")
def parked_then_gone_clip(tmp_path_factory, bus_jpg, vtest_avi) -> Path:
    """Real street footage: the bus of bus.jpg parked in the bay for 6 s, then gone."""
    bus = Sprite(crop(bus_jpg, BUS_CROP, 300)).parked(0, 6, (420, 300))
    return render(
        tmp_path_factory.mktemp("live") / "parked.mp4", video_frames(vtest_avi), 16, 10, [bus]
    )


def bay_config(tmp_path: Path, api_url: str = "http://127.0.0.1:9") -> Config:
    """One camera watching the bay for parking (a 2 s dwell), sampled at 2 fps; its RTSP
    source is never opened (the test plays the worker's loop)."""
    path = tmp_path / "worker.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": "default",
                "rules": {"illegal_parking": {"dwell_s": 2, "clear_s": 3, "occlusion_s": 1}},
                "detector": {"motion_gate": False},
                "api": {"url": api_url},
                "cameras": [
                    {
                        "id": "cam",
                        "source": "rtsp://127.0.0.1:9/cam",
                        "sample": {"fps": 2},
                        "zones": [{"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}],
                    }
                ],
            }
        )
    )
    return load_config(path)


def live_camera(config: Config, engine: Engine, sinks: Sinks, evidence_dir: Path) -> LiveCamera:
    """The config's first camera as the worker builds it, publishing to `sinks`."""
    camera_config = config.cameras[0]
    context = CameraContext(
        sinks.bus,
        sinks.feedback,
        EvidenceWriter(evidence_dir),
        sinks.sites,
        Backlog(),
        sinks.outbox,
    )
    runtime = CameraRuntime(camera_config, config, labels_of(engine, config))
    source = RtspSource("cam", camera_config.source, sampling_for(camera_config))  # never opened
    return LiveCamera(camera_config, source, runtime, context)


def test_a_failing_sink_is_logged_the_others_hear_every_event_and_a_refused_disk_loses_nothing(
    parked_then_gone_clip, default_model, tmp_path, caplog
):
    config = bay_config(tmp_path)
    sampling = sampling_for(config.cameras[0])
    engine = engine_for(config)
    state = tmp_path / "state"
    state.mkdir()
    evidence_dir = state / "evidence"
    evidence_dir.write_bytes(b"")  # a file where the directory goes: every write is refused

    # A sink that fails on everything, subscribed before the worker's own sinks.
    heard: list[type] = []

    def broken(event: object) -> None:
        heard.append(type(event))
        raise RuntimeError("this sink is broken")

    bus = Bus()
    for kind in (SampleSettled, IncidentConfirmed, IncidentCleared):
        bus.subscribe(kind, broken)
    metrics = WorkerMetrics(lambda: [])
    sinks = Sinks.wire(config, state, "key", metrics, evidence_dir, bus)
    camera = live_camera(config, engine, sinks, evidence_dir)

    def count(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, {"camera": "cam", **labels}) or 0.0

    confirmed = {"type": "illegal_parking", "event": "confirmed"}
    cleared = {"type": "illegal_parking", "event": "cleared"}
    samples = 0
    refused_at: int | None = None
    caplog.set_level(logging.INFO)
    try:
        for frame in FileSource("cam", str(parked_then_gone_clip), sampling).frames():
            camera.settle(frame, engine.detect([frame.image])[0], now=1.8e9 + frame.pts)
            samples += 1
            if refused_at is None and "kept in memory" in caplog.text:
                refused_at = samples
                # The outbox did not take the confirmation, so no other sink heard it ...
                assert sinks.outbox.counts()["outbox"] == 0
                assert count("streetwatch_incidents_total", **confirmed) == 0
                assert IncidentConfirmed not in heard
                evidence_dir.unlink()  # ... until the disk takes it again
                camera.context.backlog.retry()
        camera.retire()
        pending = sinks.outbox.pending()
    finally:
        sinks.sites.close()
        sinks.outbox.close()

    assert refused_at is not None, "the confirmation met the refused evidence directory"
    # One report, then the clearing; nothing twice, nothing lost.
    assert [item.kind for item in pending] == ["post", "patch"]
    assert pending[0].incident_id == pending[1].incident_id
    assert json.loads(pending[1].body)["cleared_at"] is not None
    assert len(list(evidence_dir.glob("*.jpg"))) >= 2  # its first-seen and confirmed shots
    # The broken sink heard every event and its failures were logged; the sinks after it
    # heard every event all the same.
    assert heard.count(SampleSettled) == samples
    assert heard.count(IncidentConfirmed) == heard.count(IncidentCleared) == 1
    failures = [r for r in caplog.records if "failed on" in r.getMessage()]
    assert len(failures) == samples + 2 and all(r.exc_info for r in failures)
    assert "failed on IncidentConfirmed" in caplog.text
    assert count("streetwatch_samples_processed_total") == samples
    assert count("streetwatch_incidents_total", **confirmed) == 1
    assert count("streetwatch_incidents_total", **cleared) == 1
    assert sinks.health.cameras["cam"].frame_at == 1.8e9 + frame.pts  # the last sample
    # Stopped with nothing open: its saved state says so.
    saved = sinks.sites.load("cam")
    assert saved is not None and saved.reports == {} and saved.evidence == {}


def test_the_static_backgrounds_are_saved_with_the_sites_every_30_s_and_at_a_stop(
    parked_then_gone_clip, default_model, tmp_path
):
    """A camera's sites go to disk every few seconds while they change; the static stage's
    backgrounds (most of the bytes, changing over minutes) only every STATIC_SAVE_EVERY_S,
    and whole with an incident event or at a stop."""
    config_path = tmp_path / "worker.yaml"
    zone = {"id": "bay", "polygon": BAY, "checks": ["illegal_parking", "garbage"]}
    config_path.write_text(
        yaml.safe_dump(
            {
                "model": "default",
                "api": {"url": "http://127.0.0.1:9"},  # never called: nothing is started
                "cameras": [{"id": "cam", "source": "rtsp://127.0.0.1:9/cam", "zones": [zone]}],
            }
        )
    )
    config = load_config(config_path)
    engine = engine_for(config)
    saved: list[SitesChanged] = []
    bus = Bus()
    bus.subscribe(SitesChanged, saved.append)
    evidence_dir = tmp_path / "state" / "evidence"
    sinks = Sinks.wire(
        config, tmp_path / "state", "key", WorkerMetrics(lambda: []), evidence_dir, bus
    )
    camera = live_camera(config, engine, sinks, evidence_dir)
    sampling = sampling_for(config.cameras[0])
    try:
        for n, frame in enumerate(FileSource("cam", str(parked_then_gone_clip), sampling).frames()):
            camera.settle(frame, engine.detect([frame.image])[0], now=1.8e9 + frame.pts)
            camera.save("changed")
            if n == 3:
                break
        camera.retire()
    finally:
        sinks.sites.close()
        sinks.outbox.close()
    periodic = [e.state for e in saved if e.why == "changed"]
    assert len(periodic) == 4
    first, *later = periodic
    assert first.pipeline.static is not None and not first.keeps_static
    assert all(s.pipeline.static is None and s.keeps_static for s in later)
    stop = saved[-1]
    assert stop.why == "stop" and stop.state.pipeline.static is not None
    loaded = SiteStore(tmp_path / "state" / "sites").load("cam")
    assert loaded is not None and loaded.pipeline.static is not None


@pytest.mark.parametrize("delivered", [False, True], ids=["queued", "delivered"])
def test_a_worker_killed_between_queueing_a_confirmation_and_saving_its_sites_reports_once(
    parked_then_gone_clip, default_model, tmp_path, caplog, delivered
):
    """The sites are saved right after the outbox takes the confirmation: a `kill -9` in
    between leaves sites a step behind (the site still in its dwell) beside the report,
    queued or already delivered. The restarted camera continues that site as the reported
    incident instead of confirming it again, and its clearing reaches the API: one case, one
    report, cleared."""
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = bay_config(tmp_path, server.url)
        engine = engine_for(config)
        state_dir = tmp_path / "state"
        evidence_dir = state_dir / "evidence"
        frames = list(
            FileSource("cam", str(parked_then_gone_clip), sampling_for(config.cameras[0])).frames()
        )
        start = time.time() - 60  # the footage played a minute ago

        def worker(bus: Bus) -> tuple[Sinks, LiveCamera]:
            sinks = Sinks.wire(config, state_dir, key, WorkerMetrics(lambda: []), evidence_dir, bus)
            return sinks, live_camera(config, engine, sinks, evidence_dir)

        def deliver(sinks: Sinks) -> None:
            with IntakeClient(server.url, key) as client:  # an incident's items go in turn
                while sinks.outbox.run_once(client, evidence_dir):
                    pass
            assert sinks.outbox.counts()["outbox"] == 0

        # The first run, up to its confirmation; then its sites as they were one sample
        # before (the save that never happened), and the kill: nothing stops cleanly.
        sinks, camera = worker(Bus())
        try:
            for n, frame in enumerate(frames):
                before = camera.state() if camera.runtime.started else None
                camera.settle(frame, engine.detect([frame.image])[0], now=start + frame.pts)
                if sinks.outbox.counts()["outbox"]:
                    rest = frames[n + 1 :]
                    break
            else:
                pytest.fail("the parked bus was never confirmed")
            (post,) = sinks.outbox.pending()
            assert before is not None
            sinks.sites.save("cam", before)
            if delivered:
                deliver(sinks)
        finally:
            sinks.sites.close()
            sinks.outbox.close()
        assert len(cases(server, key)) == (1 if delivered else 0)

        # The restarted worker plays the rest of the footage: the bus leaves.
        confirmations: list[IncidentConfirmed] = []
        bus = Bus()
        bus.subscribe(IncidentConfirmed, confirmations.append)
        caplog.set_level(logging.INFO)
        sinks, camera = worker(bus)
        try:
            for frame in rest:
                camera.settle(frame, engine.detect([frame.image])[0], now=start + frame.pts)
            camera.retire()
            assert "resumed 1 open sites (1 reported incidents)" in caplog.text
            assert f"{post.incident_id} continues as reported (its outbox holds it)" in caplog.text
            assert confirmations == []
            pending = sinks.outbox.pending()
            assert [i.kind for i in pending] == (["patch"] if delivered else ["post", "patch"])
            assert {i.incident_id for i in pending} == {post.incident_id}
            deliver(sinks)
        finally:
            sinks.sites.close()
            sinks.outbox.close()
        (case,) = cases(server, key)
        assert case["report_count"] == 1 and case["cleared_at"] is not None
