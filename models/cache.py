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


def samples_dir() -> Path:
    """Real photos shipped with the default model, used by tests and the demo."""
    return home() / "samples"


def downloads_dir() -> Path:
    """Verified source archives, kept so a model can be rebuilt without the network."""
    return home() / "downloads"
