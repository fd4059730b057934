"""Detection quality of a model, measured through our own engine (letterbox, ONNX Runtime,
NMS) on a dataset's validation split, so the figures are the ones the pipeline will see.

mAP50 and mAP50-95 follow COCO: per class, detections in score order are matched to the
best unmatched ground-truth box of the class at each IoU threshold 0.50:0.05:0.95; AP is
the 101-point interpolated area under the precision-recall curve; the mean is over the
classes that have validation instances. Precision and recall per class are at the engine's
own confidence threshold, IoU 0.5. Model classes are matched to dataset classes by name,
so a model that lacks a class (the COCO model has no `garbage`) scores 0 for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.engine import Engine
from detector.geometry import box_iou
from detector.types import Detections
from models.dataset import DatasetManifest
from models.manifest import ClassMetrics, Evaluation

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0, 1, 101)
SCORE_FLOOR = 0.001  # detections kept for the PR curves (as COCO tools do)


@dataclass(frozen=True, slots=True)
class Truth:
    boxes: np.ndarray  # (N, 4) xyxy pixels
    class_ids: np.ndarray  # (N,) dataset class ids


def validation_split(directory: Path) -> tuple[DatasetManifest, list[np.ndarray], list[Truth]]:
    """The dataset's validation images and their boxes, from its label files."""
    manifest = DatasetManifest.read(directory)
    images, truths = [], []
    for entry in (e for e in manifest.images if e.split == "val"):
        image = cv2.imread(str(directory / entry.file))
        if image is None:
            raise ValueError(f"{directory / entry.file}: unreadable image")
        label = (directory / entry.file.replace("images/", "labels/", 1)).with_suffix(".txt")
        rows = np.loadtxt(label, ndmin=2) if label.stat().st_size else np.zeros((0, 5))
        h, w = image.shape[:2]
        cxcywh = rows[:, 1:5] * [w, h, w, h]
        xyxy = np.concatenate(
            [cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1
        )
        images.append(image)
        truths.append(Truth(xyxy.astype(np.float32), rows[:, 0].astype(int)))
    if not images:
        raise ValueError(f"{directory}: the dataset has no validation images")
    return manifest, images, truths


def _match(iou: np.ndarray) -> np.ndarray:
    """(T, P) true-positive flags: predictions (rows of `iou`, in score order) each take the
    best still-unmatched truth at or above each threshold."""
    n_pred, n_true = iou.shape
    tp = np.zeros((len(IOU_THRESHOLDS), n_pred), bool)
    taken = np.zeros((len(IOU_THRESHOLDS), n_true), bool)
    rows = np.arange(len(IOU_THRESHOLDS))
    for p in range(n_pred if n_true else 0):
        candidates = np.where(taken, -1.0, iou[p][None, :])
        best = candidates.argmax(1)
        hit = candidates[rows, best] >= IOU_THRESHOLDS
        tp[hit, p] = True
        taken[rows[hit], best[hit]] = True
    return tp


def average_precision(tp: np.ndarray, scores: np.ndarray, n_true: int) -> np.ndarray:
    """AP per IoU threshold (rows of `tp`), 101-point interpolated."""
    if n_true == 0 or tp.shape[1] == 0:
        return np.zeros(len(tp))
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(tp[:, order], axis=1)
    recall = hits / n_true
    precision = hits / np.arange(1, len(order) + 1)
    # Precision made monotone from the right, then sampled at the recall points.
    envelope = np.flip(np.maximum.accumulate(np.flip(precision, 1), axis=1), 1)
    ap = np.zeros(len(tp))
    for t in range(len(tp)):
        idx = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        ap[t] = np.where(idx < len(order), envelope[t][np.minimum(idx, len(order) - 1)], 0).mean()
    return ap


def _to_dataset_ids(
    det: Detections, model_names: Sequence[str], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, scores and dataset class ids of the detections of classes the dataset has."""
    index = {n: i for i, n in enumerate(names)}
    lookup = np.array([index.get(n, -1) for n in model_names], int)
    mapped = lookup[det.class_ids] if len(det) else np.zeros(0, int)
    keep = mapped >= 0
    return det.boxes[keep], det.scores[keep], mapped[keep]


def evaluate_detections(
    detections: Sequence[Detections],
    truths: Sequence[Truth],
    model_names: Sequence[str],
    names: Sequence[str],
    conf_threshold: float,
) -> tuple[dict[str, ClassMetrics], float, float]:
    """Per-class metrics, and micro precision and recall at `conf_threshold`."""
    per_class: dict[str, ClassMetrics] = {}
    tp_all = pred_all = true_all = 0
    mapped = [_to_dataset_ids(d, model_names, names) for d in detections]
    for c, name in enumerate(names):
        flags, scores, n_true = [], [], 0
        for (boxes, conf, ids), truth in zip(mapped, truths, strict=True):
            gt = truth.boxes[truth.class_ids == c]
            n_true += len(gt)
            mine = ids == c
            order = np.argsort(-conf[mine], kind="stable")
            pb, ps = boxes[mine][order], conf[mine][order]
            flags.append(_match(box_iou(pb, gt)))
            scores.append(ps)
        if n_true == 0:
            continue
        tp = np.concatenate(flags, axis=1)
        sc = np.concatenate(scores)
        ap = average_precision(tp, sc, n_true)
        confident = sc >= conf_threshold
        hits = int(tp[0, confident].sum())
        tp_all, pred_all, true_all = (
            tp_all + hits,
            pred_all + int(confident.sum()),
            true_all + n_true,
        )
        per_class[name] = ClassMetrics(
            instances=n_true,
            ap50=round(float(ap[0]), 4),
            ap50_95=round(float(ap.mean()), 4),
            precision=round(hits / confident.sum(), 4) if confident.any() else 0.0,
            recall=round(hits / n_true, 4),
        )
    if not per_class:
        raise ValueError("the validation split has no labelled box to evaluate on")
    precision = tp_all / pred_all if pred_all else 0.0
    return per_class, round(precision, 4), round(tp_all / true_all, 4)


def evaluate(
    model: str | Path,
    dataset: Path,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
) -> Evaluation:
    """Run `model` through the engine on the dataset's validation split and score it."""
    manifest, images, truths = validation_split(dataset)
    # One run at the PR-curve floor: NMS keeps the same boxes above `conf_threshold` as a
    # run at that threshold would (a box is only suppressed by a higher-scoring one).
    engine = Engine(model, conf_threshold=SCORE_FLOOR, iou_threshold=iou_threshold)
    detections = [engine.detect_one(image) for image in images]
    per_class, precision, recall = evaluate_detections(
        detections, truths, engine.class_names, manifest.names, conf_threshold
    )
    return Evaluation(
        dataset_sha256=manifest.data_sha256,
        images=len(images),
        conf_threshold=conf_threshold,
        iou_threshold=iou_threshold,
        map50=round(float(np.mean([m.ap50 for m in per_class.values()])), 4),
        map50_95=round(float(np.mean([m.ap50_95 for m in per_class.values()])), 4),
        precision=precision,
        recall=recall,
        per_class=per_class,
    )
