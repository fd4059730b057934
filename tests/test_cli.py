"""The `streetwatch` command line in one home: every subcommand answers --help, and the
order its modules register in does not matter (no module reaches into another's parser)."""

from __future__ import annotations

import argparse

import pytest

import streams.cli
from streams.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every command path the parser knows, e.g. ("models", "compare")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_every_subcommand_answers_help(capsys):
    paths = list(_commands(build_parser()))
    assert ("models", "compare") in paths and ("score",) in paths and ("serve",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_:
            main([*path, "--help"])
        assert exit_.value.code == 0, path
        assert "usage: streetwatch " + " ".join(path) in capsys.readouterr().out


def test_registration_order_does_not_matter(monkeypatch):
    expected = sorted(_commands(build_parser()))
    reverse = tuple(reversed(streams.cli.SUBCOMMAND_MODULES))
    monkeypatch.setattr(streams.cli, "SUBCOMMAND_MODULES", reverse)
    assert sorted(_commands(build_parser())) == expected
    args = build_parser().parse_args(["models", "compare", "a", "b", "--data", "d"])
    assert (args.a, args.b, args.func.__name__) == ("a", "b", "compare")
