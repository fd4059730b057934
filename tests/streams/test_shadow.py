"""Models in the live worker: a camera runs the model its config gives it, and in shadow
mode a candidate model judges the same frames, its incidents logged and counted, never
posted."""

from __future__ import annotations

import signal

import yaml

from api.server.settings import Settings
from tests.model_copies import model_copy
from tests.streams import test_worker as live
from tests.streams.test_worker import cases, write_config
from tests.support.api import run_server
from tests.support.testcam import wait_until

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
        # cam-bikes has had every sample that took cam to its confirmed case (it lags on a
        # loaded machine: waited for, so "no case there" is meaningful, never a head start).
        # A dwell's worth of samples, not a head start; fewer than the plan's when the load
        # shedder stretches sampling on a loaded machine (9 seen where 12 are planned).
        confirmed_after = worker.metric("streetwatch_samples_processed_total", camera="cam")
        assert confirmed_after >= 5
        wait_until(
            lambda: (
                worker.metric("streetwatch_samples_processed_total", camera="cam-bikes")
                >= confirmed_after
            ),
            30,
            "cam-bikes's samples up to cam's confirmation",
        )
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


def test_a_live_camera_of_two_models_gets_cases_of_both_each_model_inferring_every_sample(
    street, worker_factory, tmp_path
):
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = write_config(tmp_path / "config.yaml", server.url, {"cam": street.url("cam")})
        body = yaml.safe_load(config.read_text())
        # The default weights twice: the parked bus is a vehicle to `parking`, garbage to
        # `garbage` (whose parking class, a motorbike, is not in the picture).
        parking = model_copy(tmp_path / "p", "default", "parking", {"illegal_parking": ["bus"]})
        garbage = model_copy(
            tmp_path / "g",
            "default",
            "garbage",
            {"garbage": ["bus"], "illegal_parking": ["motorbike"]},
        )
        body["models_by_type"] = {"illegal_parking": str(parking), "garbage": str(garbage)}
        body["detector"] = {"motion_gate": True}
        body["rules"]["garbage"] = body["rules"]["illegal_parking"]
        (zone,) = body["cameras"][0]["zones"]
        body["cameras"][0]["zones"].append(zone | {"id": "heap", "checks": ["garbage"]})
        config.write_text(yaml.safe_dump(body))
        worker = worker_factory(config, key)
        wait_until(lambda: len(cases(server, key)) == 2, 90, "a parking and a garbage case")
        found = sorted((c["type"], c["zone_id"]) for c in cases(server, key))
        assert found == [("garbage", "heap"), ("illegal_parking", "bay")]

        def counts() -> tuple[float, ...]:
            frames = worker.metric("streetwatch_samples_processed_total", camera="cam")
            frames -= worker.metric("streetwatch_samples_gated_total", camera="cam")
            inferred = [worker.metric("streetwatch_inferred_frames_total", model=m)
                        for m in ("parking", "garbage")]  # fmt: skip
            return (frames, *inferred)

        # Each model inferred exactly the samples the gate let through (read between
        # batches: one in flight is inferred before it is processed).
        wait_until(lambda: len(set(counts())) == 1, 30, "a scrape between batches")
        assert counts()[0] >= 10
        assert worker.metric("streetwatch_inferred_frames_total", model="yolov4-tiny") == 0
        assert worker.signal(signal.SIGTERM) == 0, "\n".join(worker.log[-30:])
