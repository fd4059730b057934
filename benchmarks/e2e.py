"""Section 1: end to end against the peer, on the same YOLOv8n ONNX and the same 1080p clip.

Ultralytics `YOLO(model).predict(source=clip, stream=True)` against `streetwatch score`,
every frame, 640 input, conf 0.25, IoU 0.45; each run is a fresh process, and the tools take
turns within a run so load from other processes hits them alike; ratios are taken per run
and their median reported. Also StreetWatch alone on the default model.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import ROOT, bench_python, run_json, table, work_dir

PEER = ROOT / "benchmarks" / "peer.py"
SCORED = re.compile(r"scored .*?: (\d+) frames, .*? in ([\d.]+) s")
E2E_CHECKS = ("illegal_parking", "street_stall")


def exported_models() -> dict[str, Path]:
    out = work_dir() / "yolov8n"
    models = {"fixed": out / "yolov8n-640.onnx", "dynamic": out / "yolov8n-dynamic.onnx"}
    if not all(p.exists() for p in models.values()):
        run_json(
            [str(bench_python()), str(PEER), "export", str(out)], {"YOLO_CONFIG_DIR": str(out)}
        )
    return models


def peer_fps(model: Path, clip: Path) -> float:
    env = {"YOLO_CONFIG_DIR": str(model.parent)}
    out = run_json([str(bench_python()), str(PEER), "predict", str(model), str(clip)], env)
    return json.loads(out.strip().splitlines()[-1])["fps"]


def score_config(
    model: str, clip: Path, rect: bool = False, checks: tuple[str, ...] = E2E_CHECKS
) -> dict:
    return {
        "model": model,
        "detector": {"conf_threshold": 0.25, "iou_threshold": 0.45, "rect": rect},
        "cameras": [
            {
                "id": "bench",
                "source": str(clip),
                "start_time": "2026-05-01T08:00:00+08:00",
                "sample": {"fps": 120},  # above the clip's 25 fps: every frame
                "zones": [
                    {
                        "id": "street",
                        "polygon": [[0, 0], [1920, 0], [1920, 1080], [0, 1080]],
                        "checks": list(checks),
                    }
                ],
            }
        ],
    }


def streetwatch_fps(config: dict) -> float:
    """frames/s as `streetwatch score` reports it (model loaded, decode to last incident)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd = [sys.executable, "-m", "streams.cli", "score", "--config", str(path),
               "--out", f"{tmp}/cases.jsonl", "--evidence-dir", f"{tmp}/evidence"]  # fmt: skip
        out = run_json(cmd)
    frames, seconds = SCORED.search(out).groups()
    return int(frames) / float(seconds)


def run(clip: Path, runs: int) -> str:
    models = exported_models()
    fixed = str(models["fixed"])
    contenders = {
        "Ultralytics predict(stream=True), YOLOv8n 640x640 fp32": lambda: peer_fps(
            models["fixed"], clip
        ),
        "streetwatch score, YOLOv8n 640x640 fp32": lambda: streetwatch_fps(
            score_config(fixed, clip)
        ),
        # Ultralytics letterboxes a dynamic-shape ONNX aspect-preserving (rect), as we do with
        # `rect: true`: the same model file at 640x384 for both.
        "Ultralytics predict(stream=True), YOLOv8n dynamic, rect 640x384 fp32": lambda: peer_fps(
            models["dynamic"], clip
        ),
        "streetwatch score, YOLOv8n dynamic, rect 640x384 fp32": lambda: streetwatch_fps(
            score_config(str(models["dynamic"]), clip, rect=True)
        ),
        "streetwatch score, default (YOLOv4-tiny 416x416 fp32)": lambda: streetwatch_fps(
            score_config("default", clip)
        ),
        "streetwatch score, default int8 (yolov4-tiny-int8)": lambda: streetwatch_fps(
            score_config("yolov4-tiny-int8", clip)
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, measure in contenders.items():
            samples[name].append(measure())
    names = list(samples)
    square_peer, rect_peer = samples[names[0]], samples[names[2]]

    def vs(peer: list[float], fps: list[float]) -> str:
        # per run, against the peer's turn next to it: the machine's speed drifts between runs
        return f"{statistics.median(f / p for f, p in zip(fps, peer, strict=True)):.2f}x"

    rows = [
        [
            name,
            f"{statistics.median(fps):.1f}",
            " / ".join(f"{v:.1f}" for v in fps),
            vs(square_peer, fps),
            vs(rect_peer, fps),
        ]
        for name, fps in samples.items()
    ]
    headers = ["contender", "median frames/s", "runs", "vs Ultralytics 640x640"]
    return table([*headers, "vs Ultralytics rect 640x384"], rows)
