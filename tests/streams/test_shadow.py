"""Models in the live worker: a camera runs the model its config gives it, and in shadow
mode a candidate model judges the same frames, its incidents logged and counted, never
posted."""

from __future__ import annotations

import signal

import yaml

from api.settings import Settings
from api.testing import run_server
from streams.testcam import wait_until
from tests.model_copies import model_copy
from tests.streams import test_worker as live
from tests.streams.test_worker import cases, write_config

# The live worker tests' fixtures: a loopback camera with a bus parked, the worker process.
parked_clip, street, worker_factory = live.parked_clip, live.street, live.worker_factory


def test_cameras_run_their_models_and_a_shadow_model_is_counted_never_posted(
    street, worker_factory, tmp_path
):
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        cameras = {"cam": street.url("cam"), "cam-bikes": street.url("cam")}
        config = write_config(tmp_path / "config.yaml", server.url, cameras)
        body = yaml.safe_load(config.read_text())
        # The same street on a second camera given the same weights under another name, that
        # raises parking only for motorbikes: the parked bus is no case there.
        bikes = model_copy(
            tmp_path / "bikes", "default", "bikes-only", {"illegal_parking": ["motorbike"]}
        )
        body["cameras"][1]["model"] = str(bikes)
        # The candidate is the live model under its own name: it must see exactly what the
        # live model sees, incident for incident, on the same clock (the same ids).
        body["shadow"] = {"model": "yolov4-tiny", "cameras": ["cam"]}
        config.write_text(yaml.safe_dump(body))
        worker = worker_factory(config, key)
        wait_until(lambda: cases(server, key), 90, "the parked bus's case")
        shadow_seen = {"camera": "cam", "type": "illegal_parking", "event": "confirmed"}
        wait_until(
            lambda: worker.metric("streetwatch_shadow_incidents_total", **shadow_seen) >= 1,
            30,
            "the shadow model's confirmed incident",
        )
        live_seen = worker.metric("streetwatch_incidents_total", **shadow_seen)
        assert live_seen == worker.metric("streetwatch_shadow_incidents_total", **shadow_seen) == 1
        assert worker.metric("streetwatch_shadow_inference_seconds_count") >= 1
        assert worker.metric("streetwatch_samples_processed_total", camera="cam-bikes") >= 10
        assert worker.metric("streetwatch_shadow_incidents_total", camera="cam-bikes") == 0
        assert worker.signal(signal.SIGTERM) == 0, "\n".join(worker.log[-30:])
        live = worker.log
        (case,) = cases(server, key)  # none from cam-bikes: its model has no case there
        assert case["camera_id"] == "cam"
        assert case["report_count"] == 1  # posted once, by the live model only
        (report_id,) = case["report_ids"]
        shadow_lines = [line for line in live if "shadow yolov4-tiny: camera cam:" in line]
        assert any(report_id in line and "(not posted)" in line for line in shadow_lines)
        assert any("shadow: yolov4-tiny runs beside the live model" in line for line in live)
