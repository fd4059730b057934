"""Section 3: inference alone. fp32 against int8, batch sizes, square against rect input,
and what int8 and rect inputs cost in agreement with fp32 square on held-out real footage;
for fp32, how near each model comes to the cores' float peak (benchmarks.roofline).

All variants are timed in one process, taking turns within each run, on 1080p clip frames
letterboxed as the engine feeds them; each both as one session run on every core and the
engine's default way, one single-threaded run per core side by side.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import inference_ms, table
from benchmarks.roofline import roofline
from detector.calibration import agreement, default_footage, split_footage
from detector.engine import Engine
from models import registry
from models.errors import ModelNotFoundError
from streams.sources.files import FileSource

INT8 = "yolov4-tiny-int8"
BATCHES = (1, 2, 4, 8)


def ensure_int8() -> None:
    """The int8 default model, made the way users make it: `streetwatch models quantize`."""
    try:
        registry.get(INT8)
    except ModelNotFoundError:
        cmd = [sys.executable, "-m", "streams.cli", "models", "quantize", "default", "--name", INT8]
        subprocess.run(cmd, check=True)


def _variants(yolov8: dict[str, Path]) -> dict[str, tuple[Engine, Engine, tuple[int, ...]]]:
    """Per model and input: the engine as one run on every core, the engine as it runs by
    default (one single-threaded run per core, see detector.engine), and the batches."""
    variants: dict[str, tuple[Engine, Engine, tuple[int, ...]]] = {}
    models: list[tuple[str, str | Path, bool, tuple[int, ...]]] = [
        (label, model, rect, BATCHES)
        for label, model in (("YOLOv4-tiny fp32", "default"), ("YOLOv4-tiny int8", INT8))
        for rect in (False, True)
    ]
    models += [
        ("YOLOv8n fp32", yolov8["fixed"], False, (1,)),
        ("YOLOv8n fp32", yolov8["dynamic"], True, (1,)),
    ]
    for label, model, rect, batches in models:
        one_run = Engine(model, rect=rect, parallel_runs=1)
        variants[f"{label}|{'rect' if rect else 'square'}"] = (
            one_run,
            Engine(model, rect=rect),
            batches,
        )
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
    frame = next(FileSource("bench", clip).frames()).image
    variants = _variants(yolov8)

    # fp32 and int8 at the same input and batch, one run and parallel runs, measured back to
    # back, and every ratio taken within a run: the VM's speed drifts between minutes.
    def turn(key: tuple[str, int, int]) -> tuple[str, bool, int, str, int]:
        name, batch, layout = key
        model, shape = name.split("|")  # "YOLOv4-tiny int8", "rect"
        return model.split()[0], shape != "square", batch, model, layout

    keys = sorted(
        ((name, b, layout) for name, (*_, batches) in variants.items() for b in batches
         for layout in (0, 1)),
        key=turn,
    )  # fmt: skip
    samples: dict[tuple[str, int, int], list[float]] = {key: [] for key in keys}
    for _ in range(runs):
        for name, b, layout in keys:
            engine = variants[name][layout]
            tensor = np.ascontiguousarray(engine.letterbox([frame] * b)[0])
            samples[(name, b, layout)].append(inference_ms(engine, tensor, 10, 1))

    def ratio(slower: tuple[str, int, int], faster: tuple[str, int, int]) -> str:
        per_run = (s / f for s, f in zip(samples[slower], samples[faster], strict=True))
        return f"{statistics.median(per_run):.2f}x"

    runs_label = f"{variants[next(iter(variants))][1].parallel_runs} runs x 1 thread"
    rows = []
    for name, b, layout in samples:
        if layout == 0:
            continue
        model, shape = name.split("|")
        ms = statistics.median(samples[(name, b, 1)])
        w, h = variants[name][1].input_for(frame.shape[1], frame.shape[0])
        fp32 = (f"{model.replace('int8', 'fp32')}|{shape}", b, 1)
        rows.append(
            [
                model,
                f"{shape} {w}x{h}",
                b,
                f"{statistics.median(samples[(name, b, 0)]):.1f}",
                f"{ms:.1f}",
                f"{1e3 / ms:.1f}",
                ratio((name, b, 0), (name, b, 1)),
                ratio(fp32, (name, b, 1)),
            ]
        )
    header = [
        "model",
        "input",
        "batch per run",
        "one run, all cores: ms per frame",
        f"{runs_label}: ms per frame",
        "frames/s",
        "parallel runs vs one run (per run, median)",
        "vs fp32, same input and batch (per run, median)",
    ]
    q = registry.get(INT8)[0].quantization
    agree = table(
        ["variant (against fp32 square)", "agreement"],
        [[f"YOLOv4-tiny int8 (manifest: {q.method})", f"{q.agreement:.1%}"], *_agreements()],
    )
    fp32 = {
        name.replace("|", ", "): (parallel, np.ascontiguousarray(parallel.letterbox([frame])[0]))
        for name, (_, parallel, _) in variants.items()
        if "fp32" in name
    }
    return f"{table(header, rows)}\n\n{roofline(fp32, runs)}\n\n{agree}"
