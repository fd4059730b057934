"""The `streetwatch` command line, in one home: every subcommand is a module here with a
`register(subparsers)` that adds its parsers, each setting `func(args) -> int` (an exit code
of `streams.cli.common`), a thin layer over functions the tests call. The intake API's own
commands (`serve`, `migrate`, `prune`, `keys`) live with the server and are registered here
by module name, so a worker's install does not import the server.

May import anything in `streams`, `detector`, `models` and `api`; nothing imports it but
itself (and `streams.demo`, which drives it as a user would).
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]

# In the order `streetwatch --help` lists them; any order registers the same commands.
SUBCOMMAND_MODULES = (
    "streams.cli.score",
    "streams.cli.run",
    "streams.cli.cameras",
    "streams.cli.models",
    "streams.cli.train",
    "streams.cli.dataset",
    "api.server.cli",
)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("streetwatch")
    except metadata.PackageNotFoundError:
        return "0+unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streetwatch",
        description="Detect street stalls, illegal parking and exposed garbage in camera video.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
