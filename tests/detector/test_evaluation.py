"""Detection metrics (detector.evaluation) on boxes whose overlaps are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from detector.evaluation import IOU_THRESHOLDS, Truth, evaluate_detections
from detector.types import Detections

NAMES = ["bus", "garbage"]


def _dets(boxes, scores, ids) -> Detections:
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(ids, np.int64),
    )


def _truth(boxes, ids) -> Truth:
    return Truth(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, int))


TRUTHS = [
    _truth([[0, 0, 100, 100]], [0]),
    _truth([[50, 50, 150, 250], [300, 300, 340, 380]], [0, 1]),
]


def test_perfect_detections_score_one():
    dets = [_dets(t.boxes, np.ones(len(t.boxes)), t.class_ids) for t in TRUTHS]
    per_class, precision, recall = evaluate_detections(dets, TRUTHS, NAMES, NAMES, 0.25)
    assert precision == recall == 1.0
    for m in per_class.values():
        assert (m.ap50, m.ap50_95, m.precision, m.recall) == (1.0, 1.0, 1.0, 1.0)
    assert per_class["bus"].instances == 2 and per_class["garbage"].instances == 1


def test_overlap_decides_which_thresholds_count():
    # A box over 60% of a 100x100 truth: IoU exactly 0.6, a hit at 0.50, 0.55 and 0.60 only.
    truth = [_truth([[0, 0, 100, 100]], [0])]
    dets = [_dets([[0, 0, 60, 100]], [0.9], [0])]
    per_class, _, _ = evaluate_detections(dets, truth, NAMES, NAMES, 0.25)
    hits = int((IOU_THRESHOLDS <= 0.6 + 1e-9).sum())
    assert per_class["bus"].ap50 == 1.0
    assert per_class["bus"].ap50_95 == pytest.approx(hits / len(IOU_THRESHOLDS), abs=1e-4)


def test_duplicates_false_alarms_and_thresholds():
    truth = [_truth([[0, 0, 100, 100]], [0])]
    # The true box, a lower-scored duplicate of it (a false positive) and a confident
    # garbage box where nothing is (a class with no instances: not averaged, not reported).
    dets = [
        _dets(
            [[0, 0, 100, 100], [2, 2, 100, 100], [300, 300, 400, 400]], [0.9, 0.5, 0.8], [0, 0, 1]
        )
    ]
    per_class, precision, recall = evaluate_detections(dets, truth, NAMES, NAMES, 0.25)
    assert set(per_class) == {"bus"}
    assert per_class["bus"].ap50 == 1.0  # ranked first, the true box alone reaches full recall
    assert per_class["bus"].precision == 0.5 and per_class["bus"].recall == 1.0
    assert precision == 0.5 and recall == 1.0
    # Above the duplicate's score only the true box is counted.
    per_class, _, _ = evaluate_detections(dets, truth, NAMES, NAMES, 0.6)
    assert per_class["bus"].precision == 1.0
    # A model without the dataset's class names finds nothing of them.
    per_class, precision, recall = evaluate_detections(dets, truth, ["car", "truck"], NAMES, 0.25)
    assert per_class["bus"].ap50 == 0.0 and precision == recall == 0.0
