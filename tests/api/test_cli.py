"""`streetwatch keys create` and `streetwatch serve`, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from streams.testcam import free_port
from tests.api.helpers import post, report

ROOT = Path(__file__).resolve().parents[2]


def _streetwatch(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], env=env, text=True, capture_output=True,
        check=True, timeout=120, **kwargs,
    )  # fmt: skip


def test_keys_and_serve(db_url: str, tmp_path: Path, photos: list[bytes]) -> None:
    storage = ["--data-dir", str(tmp_path / "data"), "--db", db_url]
    created = _streetwatch("keys", "create", *storage, "--scope", "ingest", "--scope", "dispatch",
                           "--name", "worker-7")  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sw_")
    listed = _streetwatch("keys", "list", *storage).stdout
    assert "worker-7" in listed and key not in listed

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "serve", *storage, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
            case, files = report(photos)
            assert post(client, case, files).status_code == 201
            assert client.get("/v1/cases").json()["items"][0]["report_ids"] == [case.id]
        key_id = key.split("_")[1]
        _streetwatch("keys", "revoke", *storage, key_id)
        assert (
            httpx.get(f"{url}/v1/cases", headers={"Authorization": f"Bearer {key}"}).status_code
            == 401
        )
    finally:
        server.terminate()
        server.wait(30)
