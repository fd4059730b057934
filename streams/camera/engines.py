"""The one place an engine is built with its labels: the config's model (or a named one)
under the config's `detector` settings, and the labels and rules it can feed under the
config's `rules`. The live worker (`ModelSet`), the shadow model, Ray's tasks and scenario
counts all load through here; `Engines` keeps what was loaded for reuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from detector.engine import Engine
from detector.pipeline import Labels, labels_for
from models.manifest import COCO_LOOK_ALIKES
from streams.config import Config

# The detector settings an engine is built with: any change means another engine.
ENGINE_SETTINGS = ("conf_threshold", "iou_threshold", "rect", "parallel_runs", "providers")


@dataclass(frozen=True, slots=True)
class Loaded:
    engine: Engine
    labels: Labels


def engine_for(config: Config, model: str | None = None, cores: int | None = None) -> Engine:
    """The engine as the config's `model` (or `model`) and `detector` settings ask for it, on
    `cores` (default all this process may use)."""
    return Engine(
        model or config.model,
        conf_threshold=config.detector.conf_threshold,
        iou_threshold=config.detector.iou_threshold,
        rect=config.detector.rect,
        parallel_runs=config.detector.parallel_runs,
        cores=cores,
        providers=config.detector.providers,
    )


def labels_of(engine: Engine, config: Config) -> Labels:
    """The labels and rules this model (and the static stand-in) can feed under `config`."""
    m = engine.manifest
    return labels_for(
        m.class_names,
        m.incident_classes,
        m.stall_attendant_classes,
        COCO_LOOK_ALIKES,
        config.rules,
    )


def load(config: Config, model: str | None = None, cores: int | None = None) -> Loaded:
    """A fresh engine for `model` (default the config's) with its labels under `config`."""
    engine = engine_for(config, model, cores)
    return Loaded(engine, labels_of(engine, config))


class Engines:
    """Engines kept by model, engine settings and cores, so a reloaded config or the next Ray
    task reuses what is loaded; labels always follow the config asked with (its rules may
    have changed while the engine did not). `cores`: what engines asked for without their
    own run on (default all this process may use)."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores
        self._engines: dict[tuple[str, tuple[object, ...], int | None], Engine] = {}

    def get(self, config: Config, model: str | None = None, cores: int | None = None) -> Loaded:
        """The engine for `model` under `config`, loaded once; a model that does not load
        raises (ModelError) and leaves nothing behind."""
        name = model or config.model
        cores = cores or self.cores
        key = (name, tuple(getattr(config.detector, k) for k in ENGINE_SETTINGS), cores)
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = engine_for(config, name, cores)
        return Loaded(engine, labels_of(engine, config))

    def keep(self, loaded: Iterable[Loaded]) -> None:
        """Forgets every engine but those in `loaded` (the models a new config runs), so
        dropped models and engines under old settings are freed."""
        wanted = {id(item.engine) for item in loaded}
        self._engines = {k: e for k, e in self._engines.items() if id(e) in wanted}
