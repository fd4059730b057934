"""The child processes of a process, read from /proc (Linux), for tests that check what a
source or a worker runs, and that it ends what it started."""

from __future__ import annotations

from pathlib import Path


def child_commands(pid: int) -> list[list[str]]:
    """The command line of every live child of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if parent == pid:
                found.append((entry / "cmdline").read_bytes().decode().split("\0")[:-1])
        except (OSError, IndexError):
            continue  # gone meanwhile
    return found


def receiving(pid: int, url: str) -> int:
    """How many ffmpeg children of `pid` receive `url`."""
    return sum(
        1 for cmd in child_commands(pid) if cmd and Path(cmd[0]).name == "ffmpeg" and url in cmd
    )
