"""Several models judging one camera's frames, each for the incident types it serves there
(a parking zone reads the parking model's vehicles, a garbage zone the garbage model's
classes). Their detections go into one label space per camera, so its tracker, static stage
and rules see one consistent set of labels. A camera of one model runs it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np

from api.contract import IncidentType
from detector.engine import Engine
from detector.pipeline import Labels
from detector.rules import RuleSpec
from detector.static_objects import STATIC_LABEL
from detector.types import Detections


@dataclass(frozen=True, slots=True)
class MixPart:
    """One model of a camera: `ids` maps its class ids to the camera's, -1 where no type it
    serves there reads the class (its rows are dropped)."""

    name: str
    engine: Engine
    ids: np.ndarray  # indexed by the model's class id


class ModelMix:
    """A camera's models (name, engine, its labels, the types it serves): `labels` are the
    camera's, `merge` makes one frame's detections of every model into the camera's."""

    def __init__(self, parts: Sequence[tuple[str, Engine, Labels, frozenset[str]]]) -> None:
        assert parts, "a camera runs at least one model"
        if len(parts) == 1:
            name, engine, labels, _ = parts[0]
            self.labels = labels  # all its types: its detections as they are
            self.parts = [MixPart(name, engine, np.arange(len(labels.names)))]
            return
        names: list[str] = []
        tables = []
        for _, _, labels, types in parts:
            read = set().union(*(_reads(labels.specs[t]) for t in types if t in labels.specs))
            read.discard(labels.static_id)
            table = np.full(len(labels.names), -1, np.int64)
            for old in sorted(read):
                table[old] = len(names)
                names.append(labels.names[old])
            tables.append(table)
        uses_static = any(
            labels.static_id in labels.specs[t].feeds
            for _, _, labels, types in parts
            for t in types
            if t in labels.specs
        )
        static_id = len(names) if uses_static else None
        if static_id is not None:
            names.append(STATIC_LABEL)
        specs: dict[str, RuleSpec] = {}
        for (_, _, labels, types), table in zip(parts, tables, strict=True):
            if labels.static_id is not None and static_id is not None:
                table = table.copy()  # its rules' static label is the camera's (the stage's)
                table[labels.static_id] = static_id
            for t in types:
                if t in labels.specs:
                    specs[t] = _remapped(labels.specs[t], table)
        # Whatever any of the camera's rules watch, people included, can stand in front of a site.
        occluders = frozenset().union(
            *(s.class_ids | s.attended_ids | s.attendant_ids for s in specs.values())
        ) - {static_id}
        self.labels = Labels(
            names,
            {t: replace(specs[t], occluder_ids=occluders) for t in IncidentType if t in specs},
            static_id,
        )
        self.parts = [
            MixPart(name, engine, table)
            for (name, engine, _, _), table in zip(parts, tables, strict=True)
        ]

    @property
    def single(self) -> bool:
        return len(self.parts) == 1

    @property
    def parallel_runs(self) -> int:
        return max(part.engine.parallel_runs for part in self.parts)

    def merge(self, found: Mapping[str, Detections]) -> Detections:
        """One frame's detections by each of the camera's models (by name) in its labels."""
        if self.single:
            return found[self.parts[0].name]
        kept = []
        for part in self.parts:
            dets = found[part.name]
            ids = part.ids[dets.class_ids]
            rows = dets[ids >= 0]
            rows.class_ids = ids[ids >= 0].astype(np.int32)
            kept.append(rows)
        return Detections.merge(kept, {})

    def submit(self, image: np.ndarray) -> Future[Detections] | Joined:
        """The frame on every model's engine (detector.motion.detect_stream pipelines these)."""
        if self.single:
            return self.parts[0].engine.submit(image)
        return Joined({p.name: p.engine.submit(image) for p in self.parts}, self.merge)


@dataclass(frozen=True, slots=True)
class Joined:
    """A frame in flight on several engines: its merged detections once all are done."""

    futures: dict[str, Future[Detections]]
    join: Callable[[Mapping[str, Detections]], Detections]

    def result(self) -> Detections:
        return self.join({n: f.result() for n, f in self.futures.items()})

    def cancel(self) -> bool:
        return all([f.cancel() for f in self.futures.values()])


def _reads(spec: RuleSpec) -> Iterable[int]:
    """The classes a type's rule reads: what feeds it and the people who attend."""
    return spec.feeds | spec.attendant_ids


def _remapped(spec: RuleSpec, table: np.ndarray) -> RuleSpec:
    def ids(old: frozenset[int]) -> frozenset[int]:
        return frozenset(int(table[i]) for i in old if table[i] >= 0)

    return replace(
        spec,
        class_ids=ids(spec.class_ids),
        attended_ids=ids(spec.attended_ids),
        unattended_ids=ids(spec.unattended_ids),
        attendant_ids=ids(spec.attendant_ids),
    )
