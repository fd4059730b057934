"""`streetwatch keys create` and `streetwatch serve`, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.helpers import post, report
from tests.support.testcam import free_port

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


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], env=full, text=True, capture_output=True,
        timeout=120,
    )  # fmt: skip


def test_version() -> None:
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.startswith("streetwatch ")
    from importlib import metadata

    assert out.stdout.split()[1] == metadata.version("streetwatch")


def test_keys_say_nothing_of_migrations(tmp_path: Path) -> None:
    out = _run("keys", "create", "--data-dir", str(tmp_path), "--scope", "ingest",
               "--camera", "cam-1", "--camera", "north-*")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no "INFO [alembic.runtime.migration] ..." lines
    assert "cam-1, north-*" in out.stdout
    listed = _run("keys", "list", "--data-dir", str(tmp_path))
    assert listed.stderr == "" and '"cameras": ["cam-1", "north-*"]' in listed.stdout


def test_a_bad_database_is_one_clear_line(tmp_path: Path) -> None:
    for url, args in (
        ("postgresql://nobody@127.0.0.1:1/nothing", ("keys", "list")),  # nothing on port 1
        ("nosuchdb://x/y", ("keys", "create", "--scope", "ingest")),
        ("sqlite:////proc/streetwatch/forbidden.db", ("keys", "list")),
        ("not a url at all", ("serve", "--port", "0")),
    ):
        out = _run(*args, "--data-dir", str(tmp_path), "--db", url)
        assert out.returncode == 2, (url, args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, (url, out.stderr)
        assert "database" in lines[0]
    out = _run("serve", "--data-dir", str(tmp_path), env={"STREETWATCH_PORT": "eighty"})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "port" in out.stderr


def test_every_setting_has_a_flag_and_a_variable() -> None:
    from api.server.settings import Settings

    help_text = _run("serve", "--help").stdout
    for name in Settings.model_fields:
        if name == "codes":
            continue
        flag = {"data_dir": "--data-dir", "db_url": "--db", "codes_file": "--codes"}.get(
            name, f"--{name.replace('_', '-')}"
        )
        assert flag in help_text, name
        env = {"data_dir": "STREETWATCH_DATA", "db_url": "STREETWATCH_DB"}.get(
            name, f"STREETWATCH_{name.upper()}"
        )
        assert env in help_text.replace("\n", " ").replace("  ", ""), name


def test_serve_from_the_environment_with_json_logs(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'streetwatch.db'}"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STREETWATCH_DATA": str(tmp_path / "data"),
        "STREETWATCH_DB": db_url,
        "STREETWATCH_PORT": str(port),
        "STREETWATCH_LOG_FORMAT": "json",
        "STREETWATCH_PUBLIC_URL": "https://sw.city.example",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "serve"],
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
        r = httpx.get(f"{url}/v1/cases", headers={"X-Request-ID": "probe-7"})
        assert r.status_code == 401 and r.json()["request_id"] == "probe-7"
        discovery = httpx.get(f"{url}/open311/v2/discovery.json").json()
        assert discovery["endpoints"][0]["url"] == "https://sw.city.example/open311/v2"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    import json

    lines = [json.loads(line) for line in err.strip().splitlines()]  # every line is JSON
    access = [x for x in lines if x["logger"] == "streetwatch.access"]
    probe = [x for x in access if x["request_id"] == "probe-7"]
    assert probe and probe[0]["status"] == 401 and probe[0]["path"] == "/v1/cases"
    assert all("request_id" in x for x in lines)
    assert not any("alembic" in x["logger"] for x in lines)


def test_worker_modules_need_no_server_stack() -> None:
    code = (
        "import sys, api.contract, api.client, api.client.outbox, api.contract.codes,"
        " api.client.backoff;"
        "heavy = {'fastapi', 'starlette', 'sqlalchemy', 'alembic', 'uvicorn', 'psycopg',"
        " 'pydantic_settings', 'prometheus_client'} & set(sys.modules);"
        "print(sorted(heavy)); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
