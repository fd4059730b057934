"""A registered model under another name with another incident mapping: the same weights,
so any difference in what is reported comes from which model a camera was given."""

from __future__ import annotations

from pathlib import Path

from models import registry
from models.registry import MANIFEST_FILE, MODEL_FILE


def model_copy(directory: Path, source: str, name: str, incident_classes: dict) -> Path:
    """A model directory (loadable by path) holding `source`'s weights under `name`."""
    manifest, path = registry.get(source)
    directory.mkdir(parents=True)
    (directory / MODEL_FILE).symlink_to(path)
    copy = type(manifest).model_validate(
        manifest.model_dump() | {"name": name, "incident_classes": incident_classes}
    )
    (directory / MANIFEST_FILE).write_text(copy.to_json())
    return directory
