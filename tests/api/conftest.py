"""Fixtures for the intake API tests: a real uvicorn server over real HTTP, on SQLite and
on a throwaway PostgreSQL cluster (every test that takes `api` runs on both)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from api.settings import MiB, Settings
from api.testing import fresh_database, postgres_cluster, run_server
from tests.api.helpers import Api

# Small limits, so the oversized-body tests send little; real photos still fit.
TEST_LIMITS = {"max_body_bytes": 4 * MiB, "max_evidence_bytes": 2 * MiB}


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """STREETWATCH_TEST_PG_URL if set, else a cluster started by scripts/postgres-test.sh."""
    if url := os.environ.get("STREETWATCH_TEST_PG_URL"):
        yield url
        return
    try:
        cluster = postgres_cluster()
        url = cluster.__enter__()
    except Exception as exc:  # any failure to start means no PostgreSQL here
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required under CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'streetwatch.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


def make_api(settings: Settings) -> Iterator[Api]:
    with run_server(settings) as server, httpx.HTTPTransport() as transport:
        clients = {
            scope: httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {server.create_key(scope, name=scope)}"},
                timeout=30,
                transport=transport,  # one connection pool (and TLS context) for all three
            )
            for scope in ("ingest", "dispatch", "admin")
        }
        yield Api(server, **clients)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        db_url=db_url,
        webhook_backoff_s=(0.2, 0.4),
        webhook_poll_s=0.05,
        webhook_timeout_s=2,
        # The tests' receivers listen on loopback, which only an allow-list opens.
        webhook_allow_networks=["127.0.0.0/8"],
        **TEST_LIMITS,
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    yield from make_api(settings)


@pytest.fixture(scope="session")
def photos(bus_jpg: Path, zidane_jpg: Path) -> list[bytes]:
    """Distinct real JPEGs: crops of the sample photos, encoded with cv2."""
    out = []
    for path in (bus_jpg, zidane_jpg):
        img = cv2.imread(str(path))
        assert img is not None
        h, w = img.shape[:2]
        for i in range(4):
            crop = img[i * h // 16 : h - i * h // 16, i * w // 16 : w - i * w // 16]
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(crop))
            assert ok
            out.append(buf.tobytes())
    return out
