"""Shared pieces of the benchmarks: the machine, the clip, timing, and RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import yaml

from api.contract import IncidentType
from detector.engine import Engine, available_cores
from detector.pipeline import STATIC_VERDICTS
from models.cache import home
from models.samples import VTEST_AVI
from tests.support.scenes import render, video_frames

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BENCH_VENV = ROOT / ".venv-bench"
CLIP_SIZE = (1920, 1080)
SUBSTREAM_SIZE = (640, 360)  # a camera's usual second stream, Frigate's `detect` role
CLIP_FPS = 25
KEYINT_S = 2.0
ALL_CHECKS = tuple(str(t) for t in IncidentType)  # what the benchmarks' zones check
# Config overlay that turns the static-object stand-in off for every type it feeds: the
# "without" side of the static stage's cost.
STAND_IN_OFF = {"rules": {str(t): {"stand_in": "off"} for t in STATIC_VERDICTS}}
STAND_IN_OFF_YAML = yaml.safe_dump(STAND_IN_OFF, default_flow_style=True).strip()
STATIC_BUDGET = 0.15  # issue #11: the static stage's share of the default model's inference


def work_dir() -> Path:
    """Generated clips and exported models: in the cache, never in the source tree."""
    path = home() / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


# The instruction sets ONNX Runtime's kernels choose between: int8 gains most with VNNI/AMX.
SIMD_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "VNNI", "amx_int8": "AMX"}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    simd = "/".join(name for flag, name in SIMD_FLAGS.items() if flag in flags) or "no AVX2"
    cores = available_cores()
    import onnxruntime

    return (
        f"{cores} cores ({cpu}, {simd}), Python {platform.python_version()}, "
        f"onnxruntime {onnxruntime.__version__}, numpy {np.__version__}"
    )


def build_clip(seconds: float, size: tuple[int, int] = CLIP_SIZE) -> Path:
    """Real street footage (opencv-doc vtest.avi) scaled to `size` (1080p: upscaled), H.264,
    25 fps, one keyframe every 2 s: what a city camera sends. Built once per length and size."""
    w, h = size
    path = work_dir() / f"street-{h}p-{seconds:g}s.mp4"
    if not path.exists():
        frames = (
            cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in video_frames(VTEST_AVI)
        )
        render(path, frames, seconds, CLIP_FPS, keyint_s=KEYINT_S)
    return path


def checkout(rev: str) -> Path:
    """The project's source tree at git revision `rev`, extracted once into the work dir (a
    live section can run another revision's worker beside this one's)."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree = work_dir() / "revisions" / sha[:12]
    if not (tree / "pyproject.toml").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def clip_size(clip: Path) -> tuple[int, int]:
    """(width, height) of a clip's video."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        return stream.width, stream.height


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


@dataclass(frozen=True)
class Cost:
    """Wall time and this process's CPU time (every thread), in milliseconds."""

    wall_ms: float
    cpu_ms: float

    def __truediv__(self, n: float) -> Cost:
        return Cost(self.wall_ms / n, self.cpu_ms / n)


def timed(fn: Callable[[], object]) -> Cost:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Cost((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3)


def median_cost(costs: list[Cost]) -> Cost:
    return Cost(
        statistics.median(c.wall_ms for c in costs), statistics.median(c.cpu_ms for c in costs)
    )


def per_call_cost(fn: Callable[[], object], repeat: int, runs: int = 5) -> Cost:
    """Median over `runs` of the mean cost of `repeat` calls."""
    fn()  # warm-up: first-call allocations and lazy initialisation
    return median_cost([timed(lambda: [fn() for _ in range(repeat)]) / repeat for _ in range(runs)])


def per_call_ms(fn: Callable[[], object], repeat: int, runs: int = 5) -> float:
    """Median over `runs` of the mean wall time of `repeat` calls, in milliseconds."""
    return per_call_cost(fn, repeat, runs).wall_ms


def inference_cost(engine: Engine, tensor: np.ndarray, repeat: int) -> Cost:
    """Raw `session.run` cost per frame of `tensor`'s batch, the engine's way: as many
    concurrent runs as it splits a batch into (`Engine.parallel_runs`), `repeat` calls each,
    after one warm-up round."""
    calls = engine.parallel_runs
    with ThreadPoolExecutor(calls) as pool:

        def all_runs() -> None:
            list(pool.map(lambda _: engine.infer(tensor), range(calls)))

        all_runs()
        cost = timed(lambda: [all_runs() for _ in range(repeat)])
    return cost / (repeat * calls * tensor.shape[0])


def inference_ms(engine: Engine, tensor: np.ndarray, repeat: int, runs: int = 5) -> float:
    """`inference_cost`'s wall time per frame, median over `runs`."""
    return median_of(runs, lambda: inference_cost(engine, tensor, repeat).wall_ms)


def bench_python() -> Path:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        sys.exit(f"{python} is missing: run `make bench` (it creates the benchmark venv)")
    return python


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str) -> None:
    """Replace (or append) one section of RESULTS.md, keeping the others as they are."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text.lstrip(), encoding="utf-8")
