"""`streetwatch train` (and `models compare`, which `streams.cli.models` registers): from a
dataset to a registered, quantised, evaluated detector, and two models side by side on the
same data.

Training itself (Ultralytics, and registering what it made) is `models.train`; it needs the
`train` extra (Ultralytics + torch, its own venv: `make train-venv`). Evaluation (the engine
on the val split, and the cases a scenario config yields) and quantisation run on the
runtime's engine alone.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import ModelError
from streams.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err

if TYPE_CHECKING:
    from models.dataset import DatasetManifest
    from models.manifest import Evaluation


def _dataset(directory: Path) -> DatasetManifest:
    from models.dataset import DatasetManifest

    return DatasetManifest.read(directory)


def evaluate_model(
    model: str, data: Path, scenario: Path | None, conf: float, iou: float
) -> Evaluation:
    """Detection metrics on the dataset's val split, and case counts on the scenario."""
    from detector.evaluation import evaluate
    from streams.offline.scenario import case_counts

    result = evaluate(model, data, conf, iou)
    if scenario is not None:
        result = result.model_copy(
            update={"scenario": str(scenario.resolve()), "cases": case_counts(scenario, model)}
        )
    return result


def _print_metrics(rows: list[tuple[str, Evaluation]]) -> None:
    """Evaluations side by side: one column per model."""
    names = [n for n, _ in rows]
    evals = [e for _, e in rows]
    table = [["", *names]]
    table += [[k, *(f"{getattr(e, k):.3f}" for e in evals)] for k in ("map50", "map50_95")]
    table += [[k, *(f"{getattr(e, k):.3f}" for e in evals)] for k in ("precision", "recall")]
    classes = list(dict.fromkeys(c for e in evals for c in e.per_class))
    for c in classes:
        for k in ("ap50", "precision", "recall"):
            cells = [
                f"{getattr(e.per_class[c], k):.3f}" if c in e.per_class else "-" for e in evals
            ]
            table.append([f"{c} {k}", *cells])
    for t in dict.fromkeys(t for e in evals for t in (e.cases or {})):
        table.append([f"cases {t}", *(str((e.cases or {}).get(t, "-")) for e in evals)])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    first = evals[0]
    print(
        f"({first.images} validation images; precision/recall at conf {first.conf_threshold}, "
        f"IoU 0.5; NMS IoU {first.iou_threshold})"
    )


def _bad_numbers(args: argparse.Namespace) -> str | None:
    if not (0 < args.conf < 1 and 0 < args.iou < 1):
        return f"--conf and --iou must be between 0 and 1, got {args.conf} and {args.iou}"
    if min(getattr(args, "epochs", 1), getattr(args, "batch", 1)) < 1:
        return "--epochs and --batch must be at least 1"
    if getattr(args, "imgsz", 32) < 32:
        return f"--imgsz must be at least 32 (a multiple of the stride), got {args.imgsz}"
    return None


def _train(args: argparse.Namespace) -> int:
    from models import registry
    from models.dataset import DatasetError

    if problem := _bad_numbers(args):
        err(problem)
        return EXIT_USAGE
    try:
        data = _dataset(args.data)
    except DatasetError as exc:
        err(str(exc))
        return EXIT_USAGE
    int8_name = f"{args.name}-int8"
    taken = {m.name for m in registry.list_models()} & {args.name, int8_name}
    if taken and not args.force:
        err(f"model {', '.join(sorted(taken))} already exists; pass --force to replace it")
        return EXIT_USAGE
    if args.scenario is not None and not args.scenario.is_file():
        err(f"{args.scenario}: no such scenario config")
        return EXIT_USAGE
    try:
        from models.train import TrainParams, check_base, register_trained, train
    except ImportError as exc:
        err(f"training needs the train extra ({exc}); see README 'Training a model'")
        return EXIT_USAGE
    params = TrainParams(args.base, args.imgsz, args.epochs, args.batch, args.device, args.seed)
    try:
        check_base(args.base)
    except ModelError as exc:
        err(str(exc))
        return EXIT_USAGE
    counts = data.images_per_split
    print(
        f"training {args.name} from {args.base} on {args.data} ({counts['train']} train / "
        f"{counts['val']} val images; {args.epochs} epochs at {args.imgsz} px on {args.device})"
    )
    with tempfile.TemporaryDirectory(prefix="streetwatch-train-") as tmp:
        workdir = args.workdir or Path(tmp)
        try:
            trained = train(args.data / "dataset.yaml", params, workdir)
            manifest = register_trained(args.name, data, params, trained)
        except (ModelError, OSError, RuntimeError, ValueError) as exc:
            err(f"training failed: {exc}")
            return EXIT_FAILED
    print(f"registered {manifest.name} ({trained.seconds:.0f} s of training)")
    names = [args.name]
    if not args.no_int8:
        try:
            _quantize(args.name, int8_name, args.data, args.force)
            names.append(int8_name)
        except (ModelError, ValueError) as exc:
            err(f"int8 model not registered: {exc}")
    rows = []
    for name in names:
        print(f"evaluating {name} through the engine on the validation split")
        try:
            result = evaluate_model(name, args.data, args.scenario, args.conf, args.iou)
        except (ModelError, ValueError) as exc:
            err(f"{name} is registered but could not be evaluated: {exc}")
            return EXIT_FAILED
        m, _ = registry.get(name)
        registry.update_manifest(m.model_copy(update={"evaluation": result}))
        rows.append((name, result))
    _print_metrics(rows)
    return EXIT_OK if len(names) == 2 or args.no_int8 else EXIT_FAILED


def _quantize(source: str, name: str, data: Path, force: bool) -> None:
    """int8, calibrated on the dataset's own training frames, agreement on its val frames."""
    import cv2

    from detector.calibration import Footage, quantize_on

    manifest = _dataset(data)
    split: dict[str, list] = {"train": [], "val": []}
    for entry in manifest.images:
        split[entry.split].append(cv2.imread(str(data / entry.file)))
    print(f"quantising {source} to int8 on {len(split['train'])} of the dataset's frames")
    m, _ = quantize_on(source, name, Footage(split["train"], split["val"]), force)
    q = m.quantization
    print(f"registered {name}: agreement with {source} on the val frames {q.agreement:.1%}")


def compare(args: argparse.Namespace) -> int:
    from models.dataset import DatasetError

    if problem := _bad_numbers(args):
        err(problem)
        return EXIT_USAGE
    try:
        _dataset(args.data)
    except DatasetError as exc:
        err(str(exc))
        return EXIT_USAGE
    if args.scenario is not None and not args.scenario.is_file():
        err(f"{args.scenario}: no such scenario config")
        return EXIT_USAGE
    from models import registry

    for name in (args.a, args.b):  # both must load before either is evaluated
        try:
            registry.resolve(name)
        except ModelError as exc:
            err(str(exc))
            return EXIT_USAGE
    rows = []
    for name in (args.a, args.b):
        try:
            rows.append((name, evaluate_model(name, args.data, args.scenario, args.conf, args.iou)))
        except (ModelError, ValueError) as exc:
            err(f"{name}: {exc}")
            return EXIT_FAILED
    _print_metrics(rows)
    return EXIT_OK


def thresholds(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--conf",
        type=float,
        default=0.25,
        help="engine confidence threshold for precision/recall (default 0.25)",
    )
    p.add_argument(
        "--iou", type=float, default=0.45, help="engine NMS IoU threshold (default 0.45)"
    )
    p.add_argument(
        "--scenario",
        type=Path,
        metavar="CONFIG",
        help="also count the cases this config's file cameras yield",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a detector on a dataset, register, quantise and evaluate it",
        description="Trains with Ultralytics (the train extra), offline, from a .pt you supply "
        "or from scratch (an architecture YAML); exports ONNX with dynamic input; registers "
        "NAME with the dataset's class-to-incident mapping; quantises NAME-int8 calibrated on "
        "the dataset's training frames; evaluates both through the engine on the val split.",
    )
    p.add_argument(
        "--data", required=True, type=Path, help="dataset directory (streetwatch dataset export)"
    )
    p.add_argument("--name", required=True, help="registry name, e.g. city-v1")
    p.add_argument(
        "--base",
        default="yolov8n.yaml",
        help="a .pt to fine-tune, or an architecture: yolov8n.yaml (default), yolo11n.yaml, ...",
    )
    p.add_argument(
        "--imgsz", type=int, default=640, help="training and export size in pixels (default 640)"
    )
    p.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--device", default="cpu", help="cpu (default), 0 for the first GPU, ...")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep Ultralytics' run directory here (default: a temporary one)",
    )
    p.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace existing models; register the int8 model even below the agreement threshold",
    )
    thresholds(p)
    p.set_defaults(func=_train)
