"""The models a config's cameras run, by name: the config's `model` for the whole worker, a
camera's own `model`, or the models of the incident types its zones check (`models_by_type`),
each for its types (a ModelMix per camera). One engine per distinct model, loaded once; a
batch of samples is gated once per sample, then split by model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.engine import Engine
from detector.model_mix import ModelMix
from detector.motion import GatedBatch, MotionGate, gate_batch
from detector.types import Detections, Frame
from streams.camera.engines import ENGINE_SETTINGS, Engines, Loaded
from streams.camera.plates import check_plates
from streams.camera.runtime import describe, warn_unchecked
from streams.config import CameraConfig, Config

log = logging.getLogger(__name__)

Detect = Callable[[Engine, list[np.ndarray]], list[Detections]]


class ModelSet:
    def __init__(
        self,
        config: Config,
        cameras: Iterable[CameraConfig],
        previous: ModelSet | None = None,
        cores: int | None = None,
    ) -> None:
        """Loads what `cameras` need; engines of `previous` with unchanged settings are kept.
        A model that does not load raises (ModelError), leaving `previous` as it was.
        cores: what the engines run on (default all this process may use); a ModelSet made
        from `previous` keeps its cores."""
        cameras = list(cameras)
        self.config = config
        self.settings = tuple(getattr(config.detector, k) for k in ENGINE_SETTINGS)
        names = sorted({config.model} | {n for c in cameras for n in config.models_of(c)})
        self.engines = previous.engines if previous is not None else Engines(cores)
        self.loaded: dict[str, Loaded] = {name: self.engines.get(config, name) for name in names}
        self.engines.keep(self.loaded.values())
        for name, loaded in self.loaded.items():
            runs = [(c, t) for c in cameras for n, t in config.models_of(c).items() if n == name]
            if runs or name == config.model:
                log.info(describe(loaded.labels, loaded.engine.manifest.name))
                warn_unchecked(runs, loaded.labels, name)
        self._mixes: dict[tuple[tuple[str, frozenset[str]], ...], ModelMix] = {}
        if previous is None:  # the plate models, checked and said once, at start
            check_plates(config, cameras)  # `on` without them raises: nothing starts

    def of(self, camera: CameraConfig) -> ModelMix:
        """The camera's models, each for the types it serves there, and its labels."""
        served = tuple(self.config.models_of(camera).items())
        mix = self._mixes.get(served)
        if mix is None:
            parts = [(n, self.loaded[n].engine, self.loaded[n].labels, t) for n, t in served]
            mix = self._mixes[served] = ModelMix(parts)
        return mix

    @property
    def parallel_runs(self) -> int:
        """Batches worth keeping in flight: the most concurrent runs any engine makes."""
        return max(loaded.engine.parallel_runs for loaded in self.loaded.values())

    def gate(self, batch: Sequence[tuple[CameraConfig, Frame, MotionGate | None]]) -> ModelBatch:
        """The batch through its cameras' gates (once per sample), then split by model: each
        model infers the samples that moved of every camera that runs it."""
        gated = gate_batch([frame for _, frame, _ in batch], [gate for _, _, gate in batch])
        mixes = [self.of(camera) for camera, _, _ in batch]
        groups: dict[str, list[int]] = {}
        for i in gated.todo:
            for part in mixes[i].parts:
                groups.setdefault(part.name, []).append(i)
        parts = [ModelPart(name, self.loaded[name].engine, idx) for name, idx in groups.items()]
        return ModelBatch(gated, mixes, parts)


@dataclass(frozen=True, slots=True)
class ModelPart:
    name: str
    engine: Engine
    indices: list[int]  # into the whole batch


@dataclass(frozen=True, slots=True)
class ModelBatch:
    """A gated batch across cameras split by model (`ModelSet.gate`): `infer` runs each
    part's engine (on an inference thread, the worker's pipeline), `settle` (in submission
    order) merges each sample's models' detections and gives every sample its own."""

    gated: GatedBatch
    mixes: list[ModelMix]  # each sample's camera's
    parts: list[ModelPart]

    def infer(self, detect: Detect) -> list[list[Detections]]:
        frames = self.gated.frames
        return [detect(p.engine, [frames[i].image for i in p.indices]) for p in self.parts]

    def settle(self, inferred: list[list[Detections]]) -> list[Detections]:
        found: dict[int, dict[str, Detections]] = {i: {} for i in self.gated.todo}
        for part, dets in zip(self.parts, inferred, strict=True):
            for i, d in zip(part.indices, dets, strict=True):
                found[i][part.name] = d
        return self.gated.settle([self.mixes[i].merge(found[i]) for i in self.gated.todo])
