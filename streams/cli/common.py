"""What every `streetwatch` subcommand shares: its exit codes and how it reports an error.

A command returns EXIT_OK, EXIT_FAILED (the work failed: a model, the API, a file) or
EXIT_USAGE (what it was asked is wrong: nothing was done), and says why on one line of
stderr. The API key every command needs is looked up by `streams.config.api_key`, the same
way the worker looks it up.
"""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def err(message: str) -> None:
    """One line on stderr: what went wrong (and, where it helps, what to do)."""
    print(f"error: {message}", file=sys.stderr)


def refused(exc: Exception, usage: type[Exception]) -> int:
    """Says why work was refused or failed; its exit code: a usage error for `usage`, else
    a failure."""
    err(str(exc))
    return EXIT_USAGE if isinstance(exc, usage) else EXIT_FAILED
