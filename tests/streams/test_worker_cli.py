"""`streetwatch run`'s own argument checks, before any camera or model is touched."""

from __future__ import annotations

import pytest

from streams.cli import main
from streams.sources.ffmpeg_rtsp import check_ffmpeg


def test_a_config_asking_for_no_processes_is_refused(tmp_path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("api: {url: 'http://127.0.0.1:9'}\nworker: {processes: 0}\n")
    assert main(["run", "--config", str(config), "--fleet"]) == 2
    assert "worker.processes: Input should be greater than or equal to 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--freeze-after", "0", "must be more than 0 seconds, got 0"),
        ("--read-timeout", "-5", "must be more than 0 seconds, got -5"),
        ("--open-timeout", "nan", "must be more than 0 seconds, got nan"),
        ("--open-timeout", "ten", "'ten' is not a number of seconds"),
        ("--processes", "0", "must be at least 1, got 0"),
        ("--processes", "two", "'two' is not a whole number"),
        ("--inference-cores", "-1", "must be at least 1, got -1"),
    ],
)
def test_timeouts_and_counts_must_be_positive(flag, value, says, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--config", str(tmp_path / "config.yaml"), flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: {says}" in capsys.readouterr().err


def test_receiving_with_ffmpeg_on_a_host_without_it_is_refused_at_start(
    tmp_path, capsys, monkeypatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "api: {url: 'http://127.0.0.1:9', key_env: SW_TEST_KEY}\n"
        "worker: {receive: ffmpeg}\n"
        "cameras: [{id: cam, source: 'rtsp://127.0.0.1:9/x', sample: {keyframes: true},\n"
        "  zones: [{id: z, polygon: [[0, 0], [1, 0], [1, 1]], checks: [garbage]}]}]\n"
    )
    monkeypatch.setenv("SW_TEST_KEY", "k")
    monkeypatch.setenv("PATH", str(tmp_path))  # a host with no ffmpeg program
    check_ffmpeg.cache_clear()
    try:
        assert main(["run", "--config", str(config)]) == 2
    finally:
        check_ffmpeg.cache_clear()
    said = capsys.readouterr().err
    assert "worker.receive: ffmpeg needs the ffmpeg program on PATH" in said
