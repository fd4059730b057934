"""`streetwatch run`'s own argument checks, before any camera or model is touched."""

from __future__ import annotations

import pytest

from streams.cli import main


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--freeze-after", "0", "must be more than 0 seconds, got 0"),
        ("--read-timeout", "-5", "must be more than 0 seconds, got -5"),
        ("--open-timeout", "nan", "must be more than 0 seconds, got nan"),
        ("--open-timeout", "ten", "'ten' is not a number of seconds"),
    ],
)
def test_timeouts_must_be_positive_seconds(flag, value, says, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--config", str(tmp_path / "config.yaml"), flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: {says}" in capsys.readouterr().err
