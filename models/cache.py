"""Where generated data (weights, converted models, evidence) lives: never in the source tree."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "STREETWATCH_HOME"


def home() -> Path:
    """The StreetWatch cache directory: $STREETWATCH_HOME, else ~/.cache/streetwatch."""
    root = os.environ.get(HOME_ENV)
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streetwatch"


def models_dir() -> Path:
    return home() / "models"
