"""Retention: Idempotency-Keys expire after a period longer than a worker's retry horizon;
final cases, their history and their evidence go after the days their status is kept;
`streetwatch prune` does it once and the server does it on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from api.client import outbox
from api.server.clock import wall
from api.server.settings import DELIVERED_KEEP_S, Settings
from api.server.tables import Case, IdempotencyRecord
from tests.api.conftest import make_api
from tests.api.helpers import FAR, Api, all_changes, count_cases, post, report
from tests.support.testcam import wait_until

STREETWATCH = Path(sys.executable).with_name("streetwatch")


def _age_idempotency(api: Api, key: str, days: float) -> None:
    with api.server.db.write() as session:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == key)
            .values(created_at=wall() - timedelta(days=days))
        )


def _age_case(api: Api, case_id: str, days: float) -> None:
    with api.server.db.write() as session:
        session.execute(
            update(Case).where(Case.id == case_id).values(updated_at=wall() - timedelta(days=days))
        )


def _move(api: Api, case_id: str, *steps: str) -> None:
    for to in steps:
        api.dispatch.post(
            f"/v1/cases/{case_id}/transitions", json={"to": to, "actor": "reviewer"}
        ).raise_for_status()


def test_the_idempotency_period_outlasts_a_workers_horizon() -> None:
    assert DELIVERED_KEEP_S == outbox.DELIVERED_KEEP_S
    assert Settings.model_fields["idempotency_ttl_s"].default > DELIVERED_KEEP_S
    with pytest.raises(ValidationError):
        Settings(idempotency_ttl_s=3600)


def test_idempotency_keys_expire_without_doubling_a_case(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    first = post(api.ingest, case, files, key="k1")
    assert first.status_code == 201
    again = post(api.ingest, case, files, key="k1")
    assert again.headers.get("idempotent-replayed") == "true"
    _age_idempotency(api, "k1", 31)
    # Expired: the key is new again; the report is still known by its id, so no new case.
    late = post(api.ingest, case, files, key="k1")
    assert late.status_code == 200 and "idempotent-replayed" not in late.headers, late.text
    assert late.json()["case_id"] == first.json()["case_id"]
    other, other_files = report(photos, camera="cam-far", at=FAR)
    _age_idempotency(api, "k1", 31)
    reused = post(api.ingest, other, other_files, key="k1")  # no longer bound to the old one
    assert reused.status_code == 201, reused.text
    assert count_cases(api.dispatch) == 2


def test_prune_removes_expired_keys_and_old_final_cases(
    api: Api, photos: list[bytes], settings: Settings
) -> None:
    old, old_files = report(photos, camera="cam-1", n_evidence=2)
    # Shares its first photo with the old case: that image must stay.
    kept, kept_files = report(photos, camera="cam-2", at=FAR, n_evidence=1)
    rejected, rejected_files = report(photos, camera="cam-3", at=FAR, photo_offset=4)
    old_id = post(api.ingest, old, old_files, key="old").json()["case_id"]
    kept_id = post(api.ingest, kept, kept_files, key="kept").json()["case_id"]
    rejected_id = post(api.ingest, rejected, rejected_files, key="rej").json()["case_id"]
    _move(api, old_id, "accepted", "dispatched", "resolved", "closed")
    _move(api, rejected_id, "rejected")
    for case_id in (old_id, rejected_id):
        _age_case(api, case_id, 10)
    _age_idempotency(api, "old", 40)
    before = {p.name for p in api.evidence_files}
    assert len(before) == 4

    env = {**os.environ, "STREETWATCH_DB": settings.database_url,
           "STREETWATCH_DATA": str(settings.data_dir)}  # fmt: skip
    run = subprocess.run(
        [str(STREETWATCH), "prune", "--retention-closed-days", "5"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert '"cases": 1' in run.stdout and '"idempotency_records": 1' in run.stdout

    assert api.dispatch.get(f"/v1/cases/{old_id}").status_code == 404
    assert api.dispatch.get(f"/v1/cases/{kept_id}").status_code == 200
    assert api.dispatch.get(f"/v1/cases/{rejected_id}").status_code == 200  # no policy for it
    assert all(c["case_id"] != old_id for c in all_changes(api.dispatch))
    after = {p.name for p in api.evidence_files}
    assert len(after) == 3  # the old case's own image went; the shared one stayed
    kept_case = api.dispatch.get(f"/v1/cases/{kept_id}").json()
    for e in kept_case["evidence"]:
        assert api.dispatch.get(e["url"]).status_code == 200
    # What was not pruned still answers as before.
    assert post(api.ingest, kept, kept_files, key="kept").headers["idempotent-replayed"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_server_prunes_on_its_own(settings: Settings, photos: list[bytes]) -> None:
    often = settings.model_copy(update={"prune_interval_s": 0.3, "retention_rejected_days": 1})
    with contextmanager(make_api)(often) as api:
        case, files = report(photos)
        case_id = post(api.ingest, case, files).json()["case_id"]
        _move(api, case_id, "rejected")
        _age_case(api, case_id, 2)
        wait_until(
            lambda: api.dispatch.get(f"/v1/cases/{case_id}").status_code == 404,
            10,
            "the rejected case pruned",
            poll_s=0.1,
        )
