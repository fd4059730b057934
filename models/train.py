"""Training a detector with Ultralytics, fully offline: the `train` extra, never the runtime.

Nothing here may reach the network. YOLO_OFFLINE and a private settings directory are set
before Ultralytics is imported; the font its dataset check insists on fetching (even with
plots off) is matplotlib's bundled DejaVu Sans under the names it looks for; plots and the
AMP check (which fetches weights) are off; the model starts from a `.pt` the user supplies
or from an architecture YAML (`yolov8n.yaml`, `yolo11n.yaml`) with random weights; ONNX
export runs without onnxslim, which Ultralytics would otherwise try to install.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import ModelError

if TYPE_CHECKING:
    from models.dataset import DatasetManifest
    from models.manifest import Manifest

ARCHITECTURES = ("yolov8n.yaml", "yolov8s.yaml", "yolo11n.yaml", "yolo11s.yaml")
OPSET = 17


@dataclass(frozen=True, slots=True)
class TrainParams:
    base: str  # a .pt path or an architecture YAML
    imgsz: int
    epochs: int
    batch: int
    device: str = "cpu"
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Trained:
    weights: Path  # best.pt
    onnx: Path  # exported with dynamic input
    seconds: float
    ultralytics_version: str
    metrics: dict[str, float]  # Ultralytics' own validation (PyTorch), for reference


FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # what ultralytics.utils.checks.check_font wants


def _offline(workdir: Path) -> None:
    """Before Ultralytics is imported: no network, settings of our own, fonts in place."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics-config"))
    import matplotlib  # an Ultralytics dependency, which ships DejaVu Sans

    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in FONTS:
        if not (config_dir / name).exists():
            shutil.copyfile(bundled, config_dir / name)


def check_base(base: str) -> None:
    """A user's .pt that exists, or an architecture YAML Ultralytics ships (no download)."""
    if base.endswith(".pt"):
        if not Path(base).is_file():
            raise ModelError(f"{base}: no such weights file (nothing is downloaded here)")
    elif base not in ARCHITECTURES and not Path(base).is_file():
        raise ModelError(
            f"{base!r}: give a .pt file or an architecture: {', '.join(ARCHITECTURES)}"
        )


def train(dataset_yaml: Path, params: TrainParams, workdir: Path) -> Trained:
    """Train on the dataset, then export the best weights to ONNX with dynamic input."""
    check_base(params.base)
    _offline(workdir)
    import ultralytics
    from ultralytics import YOLO, settings

    settings.update({"sync": False})  # no analytics, no hub
    started = time.perf_counter()
    model = YOLO(params.base, task="detect")
    model.train(
        data=str(dataset_yaml),
        imgsz=params.imgsz,
        epochs=params.epochs,
        batch=params.batch,
        device=params.device,
        seed=params.seed,
        workers=0,  # data loading in the main process: predictable on a small machine
        plots=False,  # plotting downloads a font
        amp=False,  # the AMP check downloads weights
        pretrained=params.base.endswith(".pt"),
        project=str(workdir),
        name="run",
        exist_ok=True,
        verbose=False,
    )
    trainer: Any = model.trainer
    best = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
    exported = YOLO(str(best), task="detect").export(
        format="onnx", imgsz=params.imgsz, dynamic=True, opset=OPSET, simplify=False
    )
    onnx_path = workdir / "model.onnx"
    shutil.move(str(exported), onnx_path)
    return Trained(best, onnx_path, time.perf_counter() - started, ultralytics.__version__, metrics)


def register_trained(
    name: str, data: DatasetManifest, params: TrainParams, trained: Trained
) -> Manifest:
    """Registers the trained ONNX as `name`, its classes mapped to incident types as the
    dataset maps them, with a record of the training (dataset, its hash, the parameters)."""
    from models import registry
    from models.manifest import Training
    from models.ultralytics import manifest_from_onnx

    present = set(data.names)
    mapping = {t: [c for c in cs if c in present] for t, cs in data.incident_classes.items()}
    manifest = manifest_from_onnx(trained.onnx, name, mapping, stall_attendant_classes=[])
    if manifest.class_names != data.names:
        raise ModelError(
            f"exported classes {manifest.class_names} are not the dataset's {data.names}"
        )
    manifest = manifest.model_copy(
        update={
            "version": f"trained-{data.data_sha256[:12]}",
            "training": Training(
                dataset=data.source,
                dataset_sha256=data.data_sha256,
                images=dict(data.images_per_split),
                base=params.base,
                imgsz=params.imgsz,
                epochs=params.epochs,
                batch=params.batch,
                device=params.device,
                seed=params.seed,
                ultralytics=trained.ultralytics_version,
                seconds=round(trained.seconds, 1),
            ),
        }
    )
    registry.register_file(manifest, trained.onnx)
    return manifest
