"""api.client: the typed client workers use, against the real server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from api.client import IntakeClient, RejectedError, RetryableError
from api.contract import Observation
from tests.api.helpers import HERE, NEARBY, T0, Api, report


def _key(client: httpx.Client) -> str:
    return client.headers["authorization"].removeprefix("Bearer ")


def test_post_replay_merge_and_patch(api: Api, photos: list[bytes], tmp_path: Path) -> None:
    # Calibrated cameras: the stall's ground points lie about 1 m apart.
    a, files = report(photos, camera="cam-1", position={"lat": HERE[0], "lon": HERE[1]})
    for name, data in files:
        (tmp_path / name).write_bytes(data)
    b, b_files = report(photos, camera="cam-2", at=NEARBY, photo_offset=3,
                        position={"lat": HERE[0] + 0.00001, "lon": HERE[1]})  # fmt: skip
    b_paths = []
    for name, data in b_files:
        (path := tmp_path / "b" / name).parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        b_paths.append(path)

    with IntakeClient(api.url, _key(api.ingest)) as client:
        first = client.post_case(a, tmp_path, idempotency_key=a.id)  # evidence directory
        assert first.merged is False and first.report_count == 1
        assert client.post_case(a, tmp_path, idempotency_key=a.id) == first
        merged = client.post_case(b, b_paths, idempotency_key=b.id)  # evidence paths
        assert merged.merged is True and merged.case_id == first.case_id

        obs = Observation(
            last_seen=T0 + timedelta(minutes=10), cleared_at=T0 + timedelta(minutes=11)
        )
        receipt = client.patch_case(a.id, obs)
        assert receipt.case_id == first.case_id and receipt.changed and receipt.cleared_at is None
        assert client.patch_case(b.id, obs).cleared_at is not None

        bad, bad_files = report(photos, code="09009")
        for name, data in bad_files:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(RejectedError) as rejected:
            client.post_case(bad, tmp_path, idempotency_key=bad.id)
        assert rejected.value.status == 422
        assert rejected.value.problem["type"].endswith("unknown-event-code")

    with IntakeClient(api.url, "sw_wrong") as client, pytest.raises(RejectedError) as err:
        client.patch_case(a.id, obs)
    assert err.value.status == 401


def test_retryable_failures(photos: list[bytes], tmp_path: Path) -> None:
    case, _ = report(photos, n_evidence=0)
    with IntakeClient("http://127.0.0.1:9", "k") as client, pytest.raises(RetryableError):
        client.post_case(case, tmp_path, idempotency_key="k")

    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "7"})])
    transport = httpx.MockTransport(lambda request: next(answers))
    with IntakeClient("http://api.test", "k", transport=transport) as client:
        with pytest.raises(RetryableError) as unavailable:
            client.post_case(case, tmp_path, idempotency_key="k")
        assert unavailable.value.status == 503
        with pytest.raises(RetryableError) as throttled:
            client.post_case(case, tmp_path, idempotency_key="k")
        assert throttled.value.status == 429 and throttled.value.retry_after == 7
