"""The `streetwatch` command line. Each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

# Each module exposes `register(subparsers)`; a subcommand sets `func(args) -> int`.
SUBCOMMAND_MODULES = (
    "streams.score_cli",
    "streams.worker_cli",
    "streams.fleet_cli",
    "models.cli",
    "streams.train_cli",  # after models.cli: it adds `models compare`
    "streams.dataset_cli",
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


if __name__ == "__main__":
    sys.exit(main())
