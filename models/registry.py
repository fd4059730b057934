"""The model registry: models_dir()/<name>/{model.onnx, manifest.json}, verified on every load.

A model is written into a staging directory and renamed into place, so a crash mid-fetch or
mid-import never leaves a half model behind under its name.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from models.cache import models_dir
from models.errors import ModelError, ModelNotFoundError
from models.integrity import verify_sha256
from models.manifest import Manifest
from models.ultralytics import manifest_from_onnx

log = logging.getLogger(__name__)

DEFAULT_MODEL = "yolov4-tiny"
ALIASES = {"default": DEFAULT_MODEL}
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"


def _read_manifest(directory: Path) -> Manifest:
    try:
        return Manifest.read(directory / MANIFEST_FILE)
    except (OSError, ValidationError) as exc:
        raise ModelError(f"{directory / MANIFEST_FILE}: unreadable manifest: {exc}") from exc


def _load_dir(directory: Path) -> tuple[Manifest, Path]:
    manifest = _read_manifest(directory)
    path = directory / MODEL_FILE
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing; fetch or import the model again")
    verify_sha256(path, manifest.sha256, f"model '{manifest.name}'")
    return manifest, path


def list_models() -> list[Manifest]:
    """Manifests of the registered models (not verified: listing stays cheap)."""
    root = models_dir()
    found = []
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        if directory.name.startswith(".") or not (directory / MANIFEST_FILE).exists():
            continue  # staging leftovers
        try:
            found.append(_read_manifest(directory))
        except ModelError as exc:
            log.warning("skipping %s", exc)
    return found


def get(name: str) -> tuple[Manifest, Path]:
    """A registered model by name (or alias), sha256-verified."""
    name = ALIASES.get(name, name)
    directory = models_dir() / name
    if not (directory / MANIFEST_FILE).exists():
        hint = " (streetwatch models fetch default)" if name == DEFAULT_MODEL else ""
        raise ModelNotFoundError(f"model '{name}' is not registered in {models_dir()}{hint}")
    return _load_dir(directory)


def resolve(name_or_path: str | Path) -> tuple[Manifest, Path]:
    """A registry name, a directory holding model.onnx + manifest.json, or a bare .onnx file.

    A bare .onnx file is described from its Ultralytics metadata; there is nothing to verify
    it against, so its manifest records the sha256 it has now.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _load_dir(path)
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: expected an .onnx file or a model directory")
        return manifest_from_onnx(path, name=_safe_name(path.stem)), path
    if isinstance(name_or_path, Path) or os.sep in str(name_or_path) or path.suffix == ".onnx":
        raise ModelNotFoundError(f"{path}: no such file or directory")
    return get(str(name_or_path))


def _safe_name(stem: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).lstrip("._-")
    return cleaned[:64] or "model"


def _install(manifest: Manifest, write_model: Callable[[Path], object]) -> Path:
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    stage = root / f".{manifest.name}.stage-{uuid.uuid4().hex}"
    stage.mkdir()  # not mkdtemp: that would make it 0700 regardless of umask
    target = root / manifest.name
    old = root / f".{manifest.name}.old-{uuid.uuid4().hex}"
    try:
        model_path = stage / MODEL_FILE
        write_model(model_path)
        verify_sha256(model_path, manifest.sha256, f"model '{manifest.name}'")
        (stage / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        for f in (model_path, stage / MANIFEST_FILE):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            target.rename(old)
        stage.rename(target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not target.exists():
            old.rename(target)  # put the previous model back
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target / MODEL_FILE


def register_bytes(manifest: Manifest, data: bytes) -> Path:
    """Store a model given as bytes under manifest.name, replacing any previous one."""
    return _install(manifest, lambda dst: dst.write_bytes(data))


def register_file(manifest: Manifest, source: Path) -> Path:
    """Copy a model file into the registry under manifest.name, replacing any previous one."""
    return _install(manifest, lambda dst: shutil.copyfile(source, dst))


def update_manifest(manifest: Manifest) -> None:
    """Replace a registered model's manifest (new metrics), the model file unchanged."""
    directory = models_dir() / manifest.name
    current, _ = _load_dir(directory)
    if current.sha256 != manifest.sha256:
        raise ModelError(f"model '{manifest.name}': the manifest is for another model file")
    tmp = directory / f".{MANIFEST_FILE}.{uuid.uuid4().hex}"
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(directory / MANIFEST_FILE)
