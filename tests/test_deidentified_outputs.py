"""De-identified evidence end to end: `streetwatch score --post` on real street footage
(vtest.avi, the van parked at the top right, pedestrians walking past) with the real model
and the real intake server. The worker writes a rendition beside each evidence image; Open311
and a webhook receiver get only those renditions' bytes, never the originals'.

Open311 is read with the `georeport` client from PyPI, as a city's or a citizen app's code
would: its reads send no key (GeoReport v2's reads are public), so the server runs with
`open311_public_reads`; without it the same client is refused with our reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime

import cv2
import httpx
import numpy as np
import pytest
import requests
import yaml
from georeport import GeoReport

from api.server.settings import Settings
from detector.deidentify import Deidentifier, head_boxes
from detector.engine import Engine
from detector.incidents import EvidenceShot, Incident
from streams.camera.evidence import EvidenceWriter, deidentifier
from streams.cli import main
from tests.api.test_webhooks import Receiver
from tests.support.api import run_server
from tests.test_scoring import RULES, VAN_ZONE, camera

# A head region of a person the model is sure of must differ from the original by this mean
# absolute grey level (the pixel-level checks are tests/detector/test_deidentify.py's).
MIN_CHANGE = 8.0
SURE = 0.5


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _grey(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_score_post_gives_public_outputs_only_renditions(
    default_model, vtest_avi, tmp_path, monkeypatch
):
    config = tmp_path / "config.yaml"
    cam = camera("cam-001", vtest_avi, [("no-parking-east", VAN_ZONE, ["illegal_parking"])])
    config.write_text(yaml.safe_dump({"rules": RULES, "cameras": [cam]}))
    settings = Settings(
        data_dir=tmp_path / "api",
        webhook_poll_s=0.05,
        webhook_allow_networks=["127.0.0.0/8"],
        open311_public_reads=True,
    )
    public, internal = Receiver(), Receiver()
    try:
        with run_server(settings) as server:
            admin = {"Authorization": f"Bearer {server.create_key('admin')}"}
            for receiver, extra in ((public, {}), (internal, {"evidence": "original"})):
                body = {"url": receiver.url, "event_types": ["case.created"], **extra}
                httpx.post(f"{server.url}/v1/webhooks", json=body, headers=admin).raise_for_status()
            dispatch_key = server.create_key("dispatch")
            dispatch = {"Authorization": f"Bearer {dispatch_key}"}
            monkeypatch.setenv("STREETWATCH_API_KEY", server.create_key("ingest"))
            argv = ["score", "--config", str(config), "--out", str(tmp_path / "cases.jsonl")]
            argv += ["--evidence-dir", str(tmp_path / "ev"), "--post", server.url]
            assert main(argv) == 0

            [case] = httpx.get(f"{server.url}/v1/cases", headers=dispatch).json()["items"]
            assert {e["kind"] for e in case["evidence"]} == {"first_seen", "confirmed", "dwell"}
            # The frames themselves; the dwell strip's thumbnails are checked in test_scoring.
            evidence = [e for e in case["evidence"] if e["kind"] != "dwell"]
            originals, renditions = {}, {}
            for e in evidence:
                assert e["deidentified"] is not None, e
                original = httpx.get(f"{server.url}{e['url']}", headers=dispatch).content
                rendition = httpx.get(
                    f"{server.url}{e['deidentified']['url']}", headers=dispatch
                ).content
                assert _sha(original) == e["sha256"] != e["deidentified"]["sha256"]
                assert _sha(rendition) == e["deidentified"]["sha256"]
                originals[e["sha256"]], renditions[e["deidentified"]["sha256"]] = (
                    original,
                    rendition,
                )
                # The worker wrote it beside the original and sent the file it wrote.
                [written] = (tmp_path / "ev").glob(f"*-{e['kind']}.deid.jpg")
                assert _sha(written.read_bytes()) == e["deidentified"]["sha256"]
                _heads_obscured(original, rendition)

            # Open311 through a real client, without a key: the request's media is the
            # first image's rendition, fetched without a key too.
            for output in ("json", "xml"):
                client = GeoReport(
                    f"{server.url}/open311/v2", jurisdiction="sh", output_format=output
                )
                listed = client.get_service_requests(service_code=case["event_code"])
                # xmltodict gives a lone <request> as a dict, several as a list.
                [request] = listed if isinstance(listed, list) else [listed]
                assert request == client.get_service_request(case["id"])
                assert request["service_request_id"] == case["id"]
                assert not any("plate" in field for field in request)
                media = httpx.get(request["media_url"].replace(settings.base_url, server.url))
                assert media.status_code == 200
                assert _sha(media.content) == evidence[0]["deidentified"]["sha256"]
                assert media.content not in originals.values()
            keyed = httpx.get(
                f"{server.url}/open311/v2/requests/{case['id']}.json",
                params={"api_key": dispatch_key},
            ).json()
            assert keyed[0]["media_url"] == client.get_service_request(case["id"])["media_url"]

            # The default webhook endpoint: renditions only, not even an original's hash.
            public.wait_for(1)
            _, _, body = public.received[0]
            assert not any(sha.encode() in body for sha in originals)
            shown = json.loads(body)["data"]["data"]["case"]["evidence"]
            assert {e["sha256"] for e in shown if e["kind"] != "dwell"} == set(renditions)
            for e in shown:
                fetched = httpx.get(
                    e["deidentified"]["media_url"].replace(settings.base_url, server.url)
                )
                assert fetched.status_code == 200 and _sha(fetched.content) == e["sha256"]
            # The endpoint that chose originals gets the originals (for its dispatch key).
            internal.wait_for(1)
            _, _, body = internal.received[0]
            shown = json.loads(body)["data"]["data"]["case"]["evidence"]
            assert {e["sha256"] for e in shown if e["kind"] != "dwell"} == set(originals)
        # The same data served without public reads: the client is refused, with our reason.
        closed = settings.model_copy(update={"open311_public_reads": False})
        with run_server(closed) as server:
            with pytest.raises(requests.HTTPError) as refused:
                GeoReport(f"{server.url}/open311/v2").get_service_requests()
            assert refused.value.response.status_code == 401
            [error] = refused.value.response.json()
            assert "open311_public_reads" in error["description"]
    finally:
        public.close()
        internal.close()


def _heads_obscured(original: bytes, rendition: bytes) -> None:
    """Every head of a person the model is sure of on the original is obscured on the
    rendition, and most of the frame is exactly as it was."""
    before, after = _grey(original), _grey(rendition)
    assert before.shape == after.shape
    [found] = Engine("default", classes={"person"}).detect([before])
    boxes = found.boxes[found.scores >= SURE]
    assert len(boxes) >= 2, "vtest.avi's street has people on it"
    h, w = before.shape[:2]
    for head in head_boxes(boxes):
        x1, y1 = np.floor(np.maximum(head[:2], 0)).astype(int)
        x2, y2 = np.ceil(np.minimum(head[2:], [w, h])).astype(int)
        change = np.abs(after[y1:y2, x1:x2].astype(int) - before[y1:y2, x1:x2]).mean()
        assert change > MIN_CHANGE, (x1, y1, x2, y2, change)
    # JPEG blocks away from the obscured regions encode the same pixels the same way.
    assert (after == before).all(axis=2).mean() > 0.9


def test_without_plate_models_renditions_cover_heads_only_and_say_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STREETWATCH_HOME", str(tmp_path / "empty"))
    with caplog.at_level(logging.WARNING, logger="streams.camera.evidence"):
        assert deidentifier().plates is None
    [line] = caplog.messages
    assert "heads only" in line and "streetwatch models fetch plates" in line


def test_a_shot_whose_people_are_unknown_gets_no_rendition(vtest_avi, tmp_path, caplog):
    """A site restored from state saved before renditions: its first shot's people were not
    kept, and a rendition without its heads obscured is worse than none."""
    frame = cv2.VideoCapture(str(vtest_avi)).read()[1]
    box = np.array([640, 40, 730, 105], np.float32)
    incident = Incident(
        "inc-1", "illegal_parking", "cam-001", "zone", box, "car", 0.9, 0.0, 10.0, 10.0
    )
    people = np.array([[300, 200, 340, 320]], np.float32)
    incident.evidence = [
        EvidenceShot("first_seen", 0.0, frame, box),  # people unknown
        EvidenceShot("confirmed", 10.0, frame, box, people),
    ]
    writer = EvidenceWriter(tmp_path, deidentify=Deidentifier(None))
    with caplog.at_level(logging.WARNING, logger="streams.camera.evidence"):
        unknown, known = writer.write(incident, datetime(2026, 5, 1, tzinfo=UTC))
    assert unknown.deidentified is None and "people on it are unknown" in caplog.text
    assert known.deidentified is not None
    rendition = cv2.imread(known.deidentified.path).astype(int)
    original = cv2.imread(known.path).astype(int)
    assert np.abs(rendition - original)[200:230, 300:340].mean() > MIN_CHANGE
    assert (rendition == original)[:, 400:].all()  # far from the head: the same JPEG blocks
