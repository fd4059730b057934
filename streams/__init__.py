"""Frames in and work out: the street cameras' side of StreetWatch, split by role.

- `streams.config`: the YAML configuration (pydantic), read by every part below.
- `streams.sources`: reading frames (files, RTSP), what to sample, recordings.
- `streams.camera`: the per-camera runtime both loops drive, and what it owns.
- `streams.live`: the live worker loop and what hangs off it.
- `streams.offline`: scoring recorded files, in process or on Ray.
- `streams.cli`: the `streetwatch` command line, every subcommand in one home.
- `streams.demo`: `make demo` (a checkout only: it is not in the wheel).

May import `detector`, `models` and `api` (the contract and the client); neither `detector`
nor `models` imports `streams`. Inside, the arrows point one way (tests/test_architecture.py):
sources <- camera <- live, offline <- cli.
"""

# `demo` is left out: it runs from a checkout only.
__all__ = ["camera", "cli", "config", "live", "offline", "sources"]
