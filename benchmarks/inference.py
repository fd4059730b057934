"""Section 3: inference alone. fp32 against int8, batch sizes, square against rect input,
and what int8 and rect inputs cost in agreement with fp32 square on held-out real footage.

All variants are timed in one process, taking turns within each run, on 1080p clip frames
letterboxed as the engine feeds them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import per_call_ms, table
from detector.calibration import agreement, default_footage, split_footage
from detector.engine import Engine
from models import registry
from models.errors import ModelNotFoundError
from streams.sources import FileSource

INT8 = "yolov4-tiny-int8"
BATCHES = (1, 2, 4, 8)


def ensure_int8() -> None:
    """The int8 default model, made the way users make it: `streetwatch models quantize`."""
    try:
        registry.get(INT8)
    except ModelNotFoundError:
        cmd = [sys.executable, "-m", "streams.cli", "models", "quantize", "default", "--name", INT8]
        subprocess.run(cmd, check=True)


def _variants(yolov8: dict[str, Path]) -> dict[str, tuple[Engine, tuple[int, ...]]]:
    variants: dict[str, tuple[Engine, tuple[int, ...]]] = {}
    for label, model in (("YOLOv4-tiny fp32", "default"), ("YOLOv4-tiny int8", INT8)):
        for rect in (False, True):
            variants[f"{label}|{'rect' if rect else 'square'}"] = (
                Engine(model, rect=rect),
                BATCHES,
            )
    variants["YOLOv8n fp32|square"] = (Engine(yolov8["fixed"]), (1,))
    variants["YOLOv8n fp32|rect"] = (Engine(yolov8["dynamic"], rect=True), (1,))
    return variants


def _agreements() -> list[list[str]]:
    held_out = split_footage(default_footage()).holdout
    reference = Engine("default").detect(held_out)
    rows = []
    for label, engine in (
        ("fp32, rect", Engine("default", rect=True)),
        ("int8, rect", Engine(INT8, rect=True)),
    ):
        rows.append(
            [f"YOLOv4-tiny {label}", f"{agreement(reference, engine.detect(held_out)):.1%}"]
        )
    return rows


def run(clip: Path, runs: int, yolov8: dict[str, Path]) -> str:
    ensure_int8()
    frame = next(FileSource("bench", clip).frames()).image
    variants = _variants(yolov8)
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(runs):
        for name, (engine, batches) in variants.items():
            for b in batches:
                tensor = np.ascontiguousarray(engine.letterbox([frame] * b)[0])
                ms = per_call_ms(lambda e=engine, t=tensor: e.infer(t), 10, 1) / b
                samples.setdefault((name, b), []).append(ms)
    medians = {key: statistics.median(v) for key, v in samples.items()}
    rows = []
    for (name, b), ms in medians.items():
        model, shape = name.split("|")
        engine = variants[name][0]
        w, h = engine.input_for(frame.shape[1], frame.shape[0])
        base = medians[(f"{model.replace('int8', 'fp32')}|square", 1)]
        rows.append(
            [model, f"{shape} {w}x{h}", b, f"{ms:.1f}", f"{1e3 / ms:.1f}", f"{base / ms:.2f}x"]
        )
    speed = table(
        ["model", "input", "batch", "ms per frame", "frames/s", "vs fp32 square batch 1"], rows
    )
    q = registry.get(INT8)[0].quantization
    agree = table(
        ["variant (against fp32 square)", "agreement"],
        [[f"YOLOv4-tiny int8 (manifest: {q.method})", f"{q.agreement:.1%}"], *_agreements()],
    )
    return f"{speed}\n\n{agree}"
