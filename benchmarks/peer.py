"""The peer, run inside the benchmark's own venv (.venv-bench, the `train` extra).

  python benchmarks/peer.py export OUT_DIR     -> YOLOv8n ONNX files (random weights)
  python benchmarks/peer.py predict MODEL CLIP -> one JSON line: frames, seconds, fps

Ultralytics must never download anything here: the model is built from yolov8n.yaml and
YOLO_OFFLINE is set before it is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

IMGSZ = 640
CONF, IOU = 0.25, 0.45  # StreetWatch's detector defaults; Ultralytics' own IoU default is 0.7


def export(out_dir: Path) -> None:
    from ultralytics import YOLO

    out_dir.mkdir(parents=True, exist_ok=True)
    for dynamic, name in ((False, "yolov8n-640.onnx"), (True, "yolov8n-dynamic.onnx")):
        model = YOLO("yolov8n.yaml")  # random weights: throughput does not depend on them
        path = model.export(format="onnx", imgsz=IMGSZ, opset=17, simplify=False, dynamic=dynamic)
        shutil.move(path, out_dir / name)


def predict(model_path: str, clip: str) -> None:
    from ultralytics import YOLO

    model = YOLO(model_path, task="detect")
    frames, started = 0, None
    for _ in model.predict(
        source=clip, stream=True, imgsz=IMGSZ, conf=CONF, iou=IOU, verbose=False
    ):
        if started is None:  # the first frame carries session warm-up: not counted
            started = time.perf_counter()
        else:
            frames += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"frames": frames, "seconds": seconds, "fps": frames / seconds}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "export":
        export(Path(args[0]))
    elif command == "predict":
        predict(*args)
    else:
        sys.exit(f"unknown command {command!r}")
