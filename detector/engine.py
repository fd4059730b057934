"""The inference engine: batched ONNX Runtime detection with one post-processing path.

Every model is registered with the same output contract (see models.manifest), so the engine
only letterboxes, runs the session and decodes.

Batching across cameras: `Engine.detect` takes frames of any sizes in one call. Frames that
need the same model input (same aspect, see `input_for`) share one session run; a worker
gets the most out of it by passing every camera's newest frame together.

Parallel runs: a batch is split into chunks that single-threaded runs of one session take in
turn, one run per core at a time. On a small CPU this beats one run spread over every core
(YOLOv8n raw 1.0-1.3x on 2 cores, benchmarks/RESULTS.md): a YOLO graph's many small layers
leave a multi-threaded run waiting on its slowest thread after each one, and its spinning
workers burn CPU between runs.

Graph rewrites: models are loaded through models.graph, which replaces patterns ONNX Runtime
runs slowly with equivalent ones (the DFL head of every YOLOv8/YOLO11 export: ~5% of YOLOv8n).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from detector import providers as eps
from detector.letterbox import Letterboxer, Placement
from detector.postprocess import decode
from detector.types import Detections
from models.graph import faster_dfl
from models.manifest import Manifest
from models.registry import resolve


def available_cores() -> int:
    """The cores this process may run on (affinity aware), not the host's."""
    return len(os.sched_getaffinity(0))


def _session(path: Path, intra_op_threads: int, providers: list[str]) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a YOLO graph is one chain
    opts.inter_op_num_threads = 1
    # With more than one thread, spin-waiting workers stay on (ORT's default): turning them
    # off measured slower, raw and end to end (benchmarks/RESULTS.md).
    opts.intra_op_num_threads = intra_op_threads
    model = onnx.load(str(path))
    source: str | bytes = model.SerializeToString() if faster_dfl(model) else str(path)
    return ort.InferenceSession(source, opts, providers=providers)


class Engine:
    """Detect objects in BGR frames. Holds reusable buffers: use one engine per thread."""

    parallel_runs: int
    """How many session runs a batch is split across (see the module docstring)."""

    def __init__(
        self,
        model: str | Path,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        classes: set[str] | None = None,
        input_size: tuple[int, int] | None = None,
        max_detections: int = 300,
        rect: bool = False,
        parallel_runs: int | None = None,
        cores: int | None = None,
        providers: Sequence[eps.Provider] = ("auto",),
    ) -> None:
        """model: a registry name ("default"), a model directory, or an Ultralytics .onnx.

        input_size: (w, h) to feed instead of the manifest's, for models with dynamic_hw
        (e.g. 416x256 for wide frames: fewer pixels, same scale).
        rect: for models with dynamic_hw and no explicit input_size, feed each frame the
        smallest stride-multiple input that holds it at the manifest's scale (a 16:9 frame
        runs at 416x256 instead of 416x416); fixed-size models always get their own size.
        Off by default: it is faster, but detections shift (see benchmarks/RESULTS.md).
        parallel_runs: concurrent session runs per batch, default one per core, each on its
        share of the cores; 1 runs every batch as one run on all cores (lowest latency for
        a lone frame).
        cores: how many cores the engine may use, default all this process may run on (a
        Ray task is given its share: one engine per core, not every engine on every core).
        providers: ONNX Runtime execution providers by short name, in the order wanted
        (detector.providers; the CPU always comes last). On an accelerator a batch is one
        run (parallel_runs defaults to 1): the device takes it whole.
        """
        if parallel_runs is not None and parallel_runs < 1:
            raise ValueError(f"parallel_runs must be >= 1, got {parallel_runs}")
        manifest, path = resolve(model)
        self.manifest: Manifest = manifest
        self.model_path: Path = path
        self.class_names: list[str] = list(self.manifest.class_names)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.input_size = input_size or self.manifest.input_size
        self._check_input_size()
        self.rect = rect and input_size is None and self.manifest.dynamic_hw
        self._class_ids = self._class_filter(classes)
        cores = cores or available_cores()
        chosen, missing = eps.choose(providers, ort.get_available_providers())
        self.parallel_runs = parallel_runs or (cores if chosen[0] == eps.CPU else 1)
        self._session = _session(self.model_path, max(1, cores // self.parallel_runs), chosen)
        eps.report(providers, chosen, missing, self._session.get_providers())
        self.providers: list[str] = self._session.get_providers()
        """What the session runs on, first choice first (ONNX Runtime's names)."""
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        # Ultralytics exports have a fixed batch of 1 unless exported with dynamic=True.
        self._max_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self._local = threading.local()  # each thread letterboxes into buffers of its own
        # detect() runs one share in the calling thread and the rest here; submit() and
        # detector.motion.detect_stream run every frame here.
        self._pool = ThreadPoolExecutor(self.parallel_runs, thread_name_prefix="infer")

    def _check_input_size(self) -> None:
        w, h = self.input_size
        if self.input_size == self.manifest.input_size:
            return
        if not self.manifest.dynamic_hw:
            raise ValueError(
                f"model '{self.manifest.name}' has a fixed input of {self.manifest.input_size}"
            )
        if w % self.manifest.stride or h % self.manifest.stride:
            raise ValueError(
                f"input_size {self.input_size} must be multiples of {self.manifest.stride}"
            )

    def _class_filter(self, classes: set[str] | None) -> np.ndarray | None:
        if classes is None:
            return None
        unknown = sorted(set(classes) - set(self.class_names))
        if unknown:
            raise ValueError(f"classes {unknown} are not in model '{self.manifest.name}'")
        return np.array(sorted(self.class_names.index(c) for c in classes), np.int64)

    def input_for(self, width: int, height: int) -> tuple[int, int]:
        """The (w, h) model input a width x height frame is letterboxed into."""
        if not self.rect:
            return self.input_size
        w, h = self.input_size
        scale = min(w / width, h / height)
        stride = self.manifest.stride
        return (
            min(w, math.ceil(round(width * scale) / stride) * stride),
            min(h, math.ceil(round(height * scale) / stride) * stride),
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections per image, boxes in each image's own pixels; images may differ in size.

        Images are grouped by model input size; each group is split into chunks, two per
        parallel run (smaller where the model has a fixed batch size), which the runs take as
        they finish. Results do not depend on the company an image keeps in a call.
        """
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(self.input_for(image.shape[1], image.shape[0]), []).append(i)
        chunks: list[list[int]] = []
        for members in groups.values():
            step = math.ceil(len(members) / (2 * self.parallel_runs))
            step = min(step, self._max_batch or step)
            chunks += [members[start : start + step] for start in range(0, len(members), step)]
        results: dict[int, Detections] = {}
        for chunk, found in zip(chunks, self._run_all(images, chunks), strict=True):
            results.update(zip(chunk, found, strict=True))
        return [results[i] for i in range(len(images))]

    def _run_all(
        self, images: Sequence[np.ndarray], chunks: list[list[int]]
    ) -> list[list[Detections]]:
        """Detections per chunk. The calling thread and the pool's take the next chunk as
        each finishes its last, so a run slowed by other work (a decode thread) does not
        hold the others up."""
        results: list[list[Detections]] = [[] for _ in chunks]
        order = itertools.count()  # next() on a count is atomic under the GIL

        def work() -> None:
            while (k := next(order)) < len(chunks):
                results[k] = self._run([images[i] for i in chunks[k]])

        helpers = min(len(chunks), self.parallel_runs) - 1
        pending = [self._pool.submit(work) for _ in range(helpers)]
        work()
        for future in pending:
            future.result()
        return results

    def detect_one(self, image: np.ndarray) -> Detections:
        return self.detect([image])[0]

    def submit(self, image: np.ndarray) -> Future[Detections]:
        """Detect in one image in the background, as a run of its own: up to parallel_runs
        such runs go at once, the rest queue."""
        return self._pool.submit(lambda: self._run([image])[0])

    def letterbox(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Placement]]:
        """Model input for images that share one input size (see `input_for`).

        The tensor is a view of a buffer the calling thread's next call reuses.
        """
        sizes = {self.input_for(image.shape[1], image.shape[0]) for image in images}
        if len(sizes) != 1:
            raise ValueError(f"images need {len(sizes)} input sizes; use detect() for a mix")
        (size,) = sizes
        letterboxers = self._local.__dict__.setdefault("letterboxers", {})
        letterbox = letterboxers.get(size)
        if letterbox is None:
            letterbox = letterboxers[size] = Letterboxer(*size)
        return letterbox(images)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Raw model output, (B, 4 + nc, N)."""
        (output,) = self._session.run(None, {self._input_name: tensor})
        return output

    def decode(self, output: np.ndarray, placements: Sequence[Placement]) -> list[Detections]:
        results = []
        for pred, placement in zip(output, placements, strict=True):
            boxes, scores, class_ids = decode(
                pred, self.conf_threshold, self.iou_threshold, self.max_detections, self._class_ids
            )
            results.append(Detections(placement.to_original(boxes), scores, class_ids))
        return results

    def _run(self, images: Sequence[np.ndarray]) -> list[Detections]:
        tensor, placements = self.letterbox(images)
        return self.decode(self.infer(tensor), placements)
