"""From a dataset to a registered, quantised, evaluated detector, and two models side by
side on the same data: `streetwatch train` and `models compare` as functions a test calls.

Training itself (Ultralytics, and registering what it made) is `models.train`; it needs the
`train` extra (Ultralytics + torch, its own venv: `make train-venv`). Evaluation (the engine
on the val split, and the cases a scenario config yields) and quantisation run on the
runtime's engine alone. What happens along a training run is told to a `TrainProgress`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import ModelError
from streams.training.errors import TrainingFailed, TrainingRequestError

if TYPE_CHECKING:
    from models.dataset import DatasetManifest
    from models.manifest import Evaluation, Manifest
    from models.train import TrainParams


def _check_thresholds(conf: float, iou: float) -> None:
    if not (0 < conf < 1 and 0 < iou < 1):
        raise TrainingRequestError(
            f"--conf and --iou must be between 0 and 1, got {conf} and {iou}"
        )


def _read_data(data: Path) -> DatasetManifest:
    from models.dataset import DatasetError, DatasetManifest

    try:
        return DatasetManifest.read(data)
    except DatasetError as exc:
        raise TrainingRequestError(str(exc)) from exc


def _check_scenario(scenario: Path | None) -> None:
    if scenario is not None and not scenario.is_file():
        raise TrainingRequestError(f"{scenario}: no such scenario config")


@dataclass(frozen=True, slots=True)
class TrainRequest:
    """One training run. The fields are `streetwatch train`'s options, and the errors name
    them so."""

    data: Path  # a dataset directory (`streetwatch dataset export`)
    name: str  # the registry name; the int8 model is NAME-int8
    base: str = "yolov8n.yaml"  # a .pt to fine-tune, or an architecture YAML
    imgsz: int = 640
    epochs: int = 100
    batch: int = 16
    device: str = "cpu"
    seed: int = 0
    workdir: Path | None = None  # keeps Ultralytics' run; default a temporary directory
    int8: bool = True
    force: bool = False  # replace models; register the int8 one below the agreement bar
    scenario: Path | None = None  # also count the cases this config's file cameras yield
    conf: float = 0.25  # the engine's thresholds for the evaluation
    iou: float = 0.45

    def __post_init__(self) -> None:
        _check_thresholds(self.conf, self.iou)
        if min(self.epochs, self.batch) < 1:
            raise TrainingRequestError("--epochs and --batch must be at least 1")
        if self.imgsz < 32:
            raise TrainingRequestError(
                f"--imgsz must be at least 32 (a multiple of the stride), got {self.imgsz}"
            )

    @property
    def int8_name(self) -> str:
        return f"{self.name}-int8"


class TrainProgress:
    """What a training run tells whoever watches it, in this order; each does nothing here,
    so a watcher overrides what it shows (the command line: a line each)."""

    def training(self, request: TrainRequest, data: DatasetManifest) -> None:
        """Ultralytics starts on `data` (its own progress display follows)."""

    def registered(self, manifest: Manifest, seconds: float) -> None:
        """The trained model is registered, after `seconds` of training."""

    def quantising(self, source: str, frames: int) -> None:
        """int8 calibration of `source` starts, on `frames` of the dataset's frames."""

    def quantised(self, name: str, source: str, agreement: float) -> None:
        """The int8 model `name` is registered; `agreement` with `source` on the val frames."""

    def int8_failed(self, reason: str) -> None:
        """No int8 model was registered; the run goes on with the fp32 model."""

    def evaluating(self, name: str) -> None:
        """`name` is evaluated through the engine on the val split."""


@dataclass(slots=True)
class TrainResult:
    """A finished run: each model registered, with its evaluation (also in its manifest)."""

    evaluations: list[tuple[str, Evaluation]] = field(default_factory=list)
    int8_error: str | None = None  # why the int8 model asked for is not registered

    @property
    def complete(self) -> bool:
        """Everything asked for is registered and evaluated."""
        return self.int8_error is None


def evaluate_model(
    model: str, data: Path, scenario: Path | None, conf: float, iou: float
) -> Evaluation:
    """Detection metrics on the dataset's val split, and case counts on the scenario."""
    from detector.evaluation import evaluate
    from streams.training.scenario import case_counts

    result = evaluate(model, data, conf, iou)
    if scenario is not None:
        result = result.model_copy(
            update={"scenario": str(scenario.resolve()), "cases": case_counts(scenario, model)}
        )
    return result


def train_and_register(request: TrainRequest, progress: TrainProgress | None = None) -> TrainResult:
    """Trains, registers NAME, quantises NAME-int8 (unless not asked) and evaluates both,
    the evaluation kept in each manifest. Raises TrainingRequestError before training;
    TrainingFailed when training or an evaluation fails (what was registered stays). An
    int8 model that cannot be made is the result's `int8_error`, not a failure."""
    from models import registry

    progress = progress or TrainProgress()
    data = _read_data(request.data)
    taken = {m.name for m in registry.list_models()} & {request.name, request.int8_name}
    if taken and not request.force:
        raise TrainingRequestError(
            f"model {', '.join(sorted(taken))} already exists; pass --force to replace it"
        )
    _check_scenario(request.scenario)
    try:
        from models.train import TrainParams, check_base
    except ImportError as exc:
        raise TrainingRequestError(
            f"training needs the train extra ({exc}); see README 'Training a model'"
        ) from exc
    params = TrainParams(
        request.base, request.imgsz, request.epochs, request.batch, request.device, request.seed
    )
    try:
        check_base(request.base)
    except ModelError as exc:
        raise TrainingRequestError(str(exc)) from exc
    progress.training(request, data)
    _train(request, params, data, progress)

    result = TrainResult()
    names = [request.name]
    if request.int8:
        try:
            _quantize(request.name, request.int8_name, request.data, data, request.force, progress)
            names.append(request.int8_name)
        except (ModelError, ValueError) as exc:
            result.int8_error = str(exc)
            progress.int8_failed(result.int8_error)
    for name in names:
        progress.evaluating(name)
        try:
            evaluation = evaluate_model(
                name, request.data, request.scenario, request.conf, request.iou
            )
        except (ModelError, ValueError) as exc:
            raise TrainingFailed(f"{name} is registered but could not be evaluated: {exc}") from exc
        m, _ = registry.get(name)
        registry.update_manifest(m.model_copy(update={"evaluation": evaluation}))
        result.evaluations.append((name, evaluation))
    return result


def _train(
    request: TrainRequest, params: TrainParams, data: DatasetManifest, progress: TrainProgress
) -> None:
    """Ultralytics' run in WORKDIR (else a temporary directory), the model it made registered."""
    from models.train import register_trained, train

    with tempfile.TemporaryDirectory(prefix="streetwatch-train-") as tmp:
        workdir = request.workdir or Path(tmp)
        try:
            trained = train(request.data / "dataset.yaml", params, workdir)
            manifest = register_trained(request.name, data, params, trained)
        except (ModelError, OSError, RuntimeError, ValueError) as exc:
            raise TrainingFailed(f"training failed: {exc}") from exc
    progress.registered(manifest, trained.seconds)


def _quantize(
    source: str,
    name: str,
    directory: Path,
    data: DatasetManifest,
    force: bool,
    progress: TrainProgress,
) -> None:
    """int8, calibrated on the dataset's own training frames, agreement on its val frames."""
    import cv2

    from detector.calibration import Footage, quantize_on

    split: dict[str, list] = {"train": [], "val": []}
    for entry in data.images:
        split[entry.split].append(cv2.imread(str(directory / entry.file)))
    progress.quantising(source, len(split["train"]))
    m, _ = quantize_on(source, name, Footage(split["train"], split["val"]), force)
    progress.quantised(name, source, m.quantization.agreement)


@dataclass(frozen=True, slots=True)
class CompareRequest:
    """Two models on the same dataset (and scenario). The fields are `streetwatch models
    compare`'s options, and the errors name them so."""

    a: str
    b: str
    data: Path
    scenario: Path | None = None
    conf: float = 0.25
    iou: float = 0.45

    def __post_init__(self) -> None:
        _check_thresholds(self.conf, self.iou)


def compare_models(request: CompareRequest) -> list[tuple[str, Evaluation]]:
    """Both models evaluated on the same val split (and scenario), A then B. Both must load
    before either is evaluated (TrainingRequestError); an evaluation that fails is
    TrainingFailed."""
    from models import registry

    _read_data(request.data)
    _check_scenario(request.scenario)
    for name in (request.a, request.b):
        try:
            registry.resolve(name)
        except ModelError as exc:
            raise TrainingRequestError(str(exc)) from exc
    rows = []
    for name in (request.a, request.b):
        try:
            rows.append(
                (
                    name,
                    evaluate_model(name, request.data, request.scenario, request.conf, request.iou),
                )
            )
        except (ModelError, ValueError) as exc:
            raise TrainingFailed(f"{name}: {exc}") from exc
    return rows
