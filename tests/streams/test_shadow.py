"""Shadow mode in the live worker: a candidate model judges the same frames, its incidents
are logged and counted, and nothing of it is posted."""

from __future__ import annotations

import signal

import yaml

from api.settings import Settings
from api.testing import run_server
from streams.testcam import wait_until
from tests.streams.test_worker import (  # noqa: F401 - fixtures used by name
    cases,
    parked_clip,
    street,
    worker_factory,
    write_config,
)


def test_a_shadow_model_is_counted_and_never_posted(street, worker_factory, tmp_path):  # noqa: F811
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = write_config(tmp_path / "config.yaml", server.url, {"cam": street.url("cam")})
        body = yaml.safe_load(config.read_text())
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
        assert worker.signal(signal.SIGTERM) == 0, "\n".join(worker.log[-30:])
        live = worker.log
        (case,) = cases(server, key)
        assert case["report_count"] == 1  # posted once, by the live model only
        (report_id,) = case["report_ids"]
        shadow_lines = [line for line in live if "shadow yolov4-tiny: camera cam:" in line]
        assert any(report_id in line and "(not posted)" in line for line in shadow_lines)
        assert any("shadow: yolov4-tiny runs beside the live model" in line for line in live)
