"""Fixtures for the intake API tests: a real uvicorn server over real HTTP, on SQLite and
on a throwaway PostgreSQL cluster (every test that takes `api` runs on both)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from api.server import netpolicy
from api.server.settings import MiB, Settings
from tests.api.helpers import Api
from tests.support.api import fresh_database, postgres_cluster, run_server

# Small limits, so the oversized-body tests send little; real photos still fit.
TEST_LIMITS = {"max_body_bytes": 4 * MiB, "max_evidence_bytes": 2 * MiB}


_real_getaddrinfo = socket.getaddrinfo


def _loopback_only_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    """Names resolve only when the answer needs no query off this machine: IP literals and
    `localhost` (from /etc/hosts). Anything else, say a fuzzer's random webhook host, does
    not resolve, as if the name did not exist: no test sends DNS traffic anywhere."""
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    try:
        ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        if name.lower() != "localhost":
            raise socket.gaierror(socket.EAI_NONAME, "not resolved in tests") from None
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_dns_off_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netpolicy.socket, "getaddrinfo", _loopback_only_getaddrinfo)


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


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """For what does not depend on the database (HTTP handling, logging): SQLite only."""
    return Settings(
        data_dir=tmp_path / "data",
        db_url=f"sqlite:///{tmp_path / 'db' / 'streetwatch.db'}",
        webhook_poll_s=0.05,
        webhook_allow_networks=["127.0.0.0/8"],
        **TEST_LIMITS,
    )


@pytest.fixture
def sqlite_api(sqlite_settings: Settings) -> Iterator[Api]:
    yield from make_api(sqlite_settings)


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
