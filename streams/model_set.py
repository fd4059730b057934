"""The models a config's cameras run, by name: the config's `model` for the whole worker, a
camera's own `model`, or the model of the incident types its zones check (`models_by_type`).
One engine per distinct model, loaded once; a batch of samples is split by model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.engine import Engine
from detector.motion import GatedBatch, MotionGate, gate_batch
from detector.pipeline import Labels
from detector.types import Detections, Frame
from streams.config import CameraConfig, Config
from streams.runtime import describe, engine_for, labels_of, warn_unchecked

log = logging.getLogger(__name__)

ENGINE_SETTINGS = ("conf_threshold", "iou_threshold", "rect", "parallel_runs")
Detect = Callable[[Engine, list[np.ndarray]], list[Detections]]


@dataclass(frozen=True, slots=True)
class Loaded:
    engine: Engine
    labels: Labels


class ModelSet:
    def __init__(
        self, config: Config, cameras: Iterable[CameraConfig], previous: ModelSet | None = None
    ) -> None:
        """Loads what `cameras` need; engines of `previous` with unchanged settings are kept.
        A model that does not load raises (ModelError), leaving `previous` as it was."""
        cameras = list(cameras)
        self.config = config
        self.settings = tuple(getattr(config.detector, k) for k in ENGINE_SETTINGS)
        names = sorted({config.model} | {config.model_of(c) for c in cameras})
        reuse = previous.loaded if previous and previous.settings == self.settings else {}
        self.loaded: dict[str, Loaded] = {}
        for name in names:
            engine = reuse[name].engine if name in reuse else engine_for(config, name)
            self.loaded[name] = Loaded(engine, labels_of(engine, config))
        for name, loaded in self.loaded.items():
            runs = [c for c in cameras if config.model_of(c) == name]
            if runs or name == config.model:
                log.info(describe(loaded.labels, loaded.engine.manifest.name))
                warn_unchecked(runs, loaded.labels, name)

    def of(self, camera: CameraConfig) -> Loaded:
        return self.loaded[self.config.model_of(camera)]

    @property
    def parallel_runs(self) -> int:
        """Batches worth keeping in flight: the most concurrent runs any engine makes."""
        return max(loaded.engine.parallel_runs for loaded in self.loaded.values())

    def gate(self, batch: Sequence[tuple[CameraConfig, Frame, MotionGate | None]]) -> ModelBatch:
        """The batch split by its cameras' models, each part gated: what each engine infers."""
        groups: dict[str, list[int]] = {}
        for i, (camera, _, _) in enumerate(batch):
            groups.setdefault(self.config.model_of(camera), []).append(i)
        parts = [
            ModelPart(
                self.loaded[name].engine,
                idx,
                gate_batch([batch[i][1] for i in idx], [batch[i][2] for i in idx]),
            )
            for name, idx in groups.items()
        ]
        return ModelBatch(len(batch), parts)

    def detect(
        self,
        batch: Sequence[tuple[CameraConfig, Frame, MotionGate | None]],
        detect: Detect,
    ) -> list[Detections]:
        """Each sample's detections by its camera's model: one gated batch per model."""
        split = self.gate(batch)
        return split.settle(split.infer(detect))


@dataclass(frozen=True, slots=True)
class ModelPart:
    engine: Engine
    indices: list[int]  # into the whole batch
    gated: GatedBatch


@dataclass(frozen=True, slots=True)
class ModelBatch:
    """A batch across cameras split by model (`ModelSet.gate`): `infer` runs each part's
    engine (on an inference thread, the worker's pipeline), `settle` (in submission order)
    gives every sample its detections."""

    size: int
    parts: list[ModelPart]

    def infer(self, detect: Detect) -> list[list[Detections]]:
        return [detect(part.engine, part.gated.images()) for part in self.parts]

    def settle(self, inferred: list[list[Detections]]) -> list[Detections]:
        found: list[Detections | None] = [None] * self.size
        for part, dets in zip(self.parts, inferred, strict=True):
            for i, d in zip(part.indices, part.gated.settle(dets), strict=True):
                found[i] = d
        return found  # type: ignore[return-value]  # every index filled above
