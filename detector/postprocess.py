"""Turn one image's raw model output (the common (4 + nc, N) contract) into kept detections."""

from __future__ import annotations

import cv2
import numpy as np


def decode(
    pred: np.ndarray,
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int,
    class_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best class per candidate, score threshold, per-class NMS.

    pred: (4 + nc, N) rows cx, cy, w, h (input pixels) then class scores.
    class_ids: if given, only these classes compete (the others are ignored, not just hidden).
    Returns xyxy boxes (float32, input pixels), scores (float32), class ids (int32),
    highest score first.
    """
    scores = pred[4:] if class_ids is None else pred[4 + class_ids]
    best = scores.max(axis=0)
    keep = np.flatnonzero(best >= conf_threshold)
    if keep.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    cls = scores[:, keep].argmax(axis=0)
    if class_ids is not None:
        cls = class_ids[cls]
    cls = cls.astype(np.int32)
    score = best[keep].astype(np.float32)
    cx, cy, w, h = pred[:4, keep].astype(np.float32)
    xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    # OpenCV's batched NMS offsets boxes by class so classes never suppress each other.
    # Its top_k caps the candidates considered, not the output, so the cap is applied after.
    idx = np.asarray(
        cv2.dnn.NMSBoxesBatched(xywh, score, cls, conf_threshold, iou_threshold), np.int64
    ).reshape(-1)[:max_detections]
    boxes = xywh[idx]
    boxes[:, 2:] += boxes[:, :2]
    return boxes, score[idx], cls[idx]
