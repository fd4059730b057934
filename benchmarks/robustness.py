"""Section 12: the static-object stand-in under a street camera's nuisances (issue #23).

tests/support/nuisance.py's long scenes (real footage, real photos; daylight drifting half an hour
each way, clouds, a building's shadow, shake, a lighting step, IR and high-ISO night, low
bitrate, a tree, people standing and sitting, a crowd, rain, a re-aimed camera), each with a
vendor, a heap and a bus arriving partway through, one zone over the street checking all
three types. Each scene is inferred once by the default model at a fixed 2 fps (the
detections are kept beside the video, keyed by the model's sha256) and scored by
`score_camera` (the code `streetwatch score` runs) on those same detections twice: with the
per-frame modules the stage decides with (geometry, tracker, static_objects, stages, rules)
as they were at a fixed git revision (the baseline: today's before issue #23), loaded with
`git show` into modules of their own and swapped into the current pipeline while it runs,
and with the current ones. The baseline's cases are kept too (a fixed revision on fixed
detections), so a re-run after a change to the stage replays the current stage alone.

Counted: every case that is not a planted object (right type, lying on it) is a false
alarm, per camera-hour of the scenes; every `moved` scene change but a re-aimed scene's
report of its move is a false `scene_changed`; a planted object is found when its case is
confirmed, and its delays are from when it appeared to the case's first seen and confirmed
times (media seconds; the dwell is 20 s).
"""

from __future__ import annotations

import inspect
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import types
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from multiprocessing import get_context
from pathlib import Path

from api.contract import CaseReport
from benchmarks.common import ROOT, machine, table, work_dir
from detector.engine import Engine
from detector.static_objects import SceneEvent
from detector.types import Detections
from models.integrity import sha256_file
from streams.camera.engines import engine_for, labels_of
from streams.camera.evidence import EvidenceWriter
from streams.camera.runtime import CameraRuntime
from streams.config import Config, parse_config
from streams.offline.chunks import detect_span
from streams.offline.scoring import score_camera
from streams.sources.files import Span
from tests.support import nuisance
from tests.support.nuisance import Planted, Scene

BASELINE = "0b8dd80"  # main before issue #23
START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
EARLY_S = 5.0  # a case first seen this long before its object appeared is not that object's
MOVED_WITHIN_S = 30.0  # a re-aimed camera is reported within this after the re-aim


# The per-frame parts of the pipeline the baseline is taken from: the stage and what decides
# with it (tracking and stationarity, site rules and attendance, zone geometry). The pipeline
# that wires them, the engine and everything else are the current ones.
STAGE_MODULES = ("geometry", "tracker", "static_objects", "stages", "rules")
IMPORT = re.compile(r"^from detector\.(\w+) import", re.M)


def _source(rev: str, name: str) -> str:
    return subprocess.run(
        ["git", "show", f"{rev}:detector/{name}.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def detector_at(rev: str) -> dict[str, types.ModuleType]:
    """The STAGE_MODULES as they were at `rev`, each a module of its own that imports the
    others as they were then (dependencies first); nothing of the current code is replaced."""
    sources = {name: _source(rev, name) for name in STAGE_MODULES}
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in order:
            for dep in IMPORT.findall(sources[name]):
                if dep in sources and dep != name:
                    visit(dep)
            order.append(name)

    for name in STAGE_MODULES:
        visit(name)
    old: dict[str, types.ModuleType] = {}
    current = {name: sys.modules[f"detector.{name}"] for name in STAGE_MODULES}
    try:
        for name in order:
            module = types.ModuleType(f"detector.{name}")
            module.__file__ = f"{rev}:detector/{name}.py"
            sys.modules[module.__name__] = module  # the old ones import each other
            exec(compile(sources[name], module.__file__, "exec"), module.__dict__)
            old[name] = module
    finally:
        sys.modules.update({f"detector.{n}": m for n, m in current.items()})
    _without_strips(old.get("rules"))
    return old


class _NoStrip:
    """The dwell strip of a site from before strips existed: no thumbnails."""

    def shots(self) -> list:
        return []


def _without_strips(rules: types.ModuleType | None) -> None:
    """Today's pipeline asks every site for its dwell strip (issue #27) and every rule to end
    them; an older rules module had neither, so it gets empty ones (the cases are the same)."""
    if rules is None:
        return
    if not hasattr(rules._Site, "strip"):
        rules._Site.strip = property(lambda _site: _NoStrip())
    for rule in vars(rules).values():
        if isinstance(rule, type) and hasattr(rule, "update") and not hasattr(rule, "end_strips"):
            rule.end_strips = lambda _self: None


@contextmanager
def stage_from(old: dict[str, types.ModuleType] | None) -> Iterator[None]:
    """Pipelines built inside use the `old` modules (None: the current ones): every name a
    detector module imported from a current one points at the old one's while inside. The
    old stage gets the settings it knows of the ones configured, its own defaults for the
    rest."""
    if old is None:
        yield
        return
    replaced: list[tuple[dict, str, object]] = []
    current = {name: sys.modules[f"detector.{name}"] for name in old}
    swap = {
        id(getattr(current[name], attr)): getattr(module, attr)
        for name, module in old.items()
        for attr, value in vars(module).items()
        # Classes and functions only: a constant's id may be any other equal constant's.
        if isinstance(value, type | types.FunctionType) and hasattr(current[name], attr)
    }
    stage = old["static_objects"].StaticObjectStage
    params_of = old["static_objects"].StaticParams
    known = list(inspect.signature(stage).parameters)[1:]

    def make(params, *args, **kwargs):
        given = params.model_dump(exclude_unset=True)
        own = params_of(**{k: v for k, v in given.items() if k in params_of.model_fields})
        kwargs = {k: v for k, v in kwargs.items() if k in known}
        return stage(own, *args[: len(known)], **kwargs)

    swap[id(current["static_objects"].StaticObjectStage)] = make
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("detector.") and module_name[9:] not in old:
            space = vars(module)
            for attr, value in list(space.items()):
                if id(value) in swap and not attr.startswith("__"):
                    replaced.append((space, attr, value))
                    space[attr] = swap[id(value)]
    try:
        yield
    finally:
        for space, attr, value in replaced:
            space[attr] = value


@contextmanager
def scene_events() -> Iterator[list[SceneEvent]]:
    """The scene changes `score_camera` takes from its runtime, as it takes them."""
    taken: list[SceneEvent] = []
    take = CameraRuntime.take_scene_events

    def recording(self: CameraRuntime) -> list[SceneEvent]:
        events = take(self)
        taken.extend(events)
        return events

    CameraRuntime.take_scene_events = recording  # type: ignore[method-assign]
    try:
        yield taken
    finally:
        CameraRuntime.take_scene_events = take  # type: ignore[method-assign]


def _config(clip: Path) -> Config:
    return parse_config(
        {
            "model": "default",
            "rules": nuisance.RULES,
            "cameras": [
                {
                    "id": clip.stem,
                    "source": str(clip),
                    "start_time": START.isoformat(),
                    # Fixed: the samples must not depend on the stage, so both replay one
                    # inference.
                    "sample": {"fps": nuisance.FPS, "adaptive": False},
                    "zones": [{"id": "street", "polygon": nuisance.STREET, "checks": nuisance.ALL}],
                }
            ],
        }
    )


def _detections(
    clip: Path, config: Config, engine: Engine, model_sha: str
) -> dict[int, Detections]:
    """The default model's detections of every sample, inferred once per clip and model."""
    cached = clip.with_name(f"{clip.stem}.{model_sha[:12]}.detections.pkl")
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    found = detect_span(config.cameras[0], Span(0, None, 0, None), engine)
    tmp = cached.with_suffix(".part")
    tmp.write_bytes(pickle.dumps(found))
    tmp.replace(cached)
    return found


@dataclass(slots=True)
class Outcome:
    false: Counter[str] = field(default_factory=Counter)  # by type, and "scene_changed"
    reseeds: int = 0  # scene changes of any kind (each re-seeds the backgrounds)
    found: list[tuple[Planted, float, float] | None] = field(default_factory=list)
    moved: bool = False  # a re-aimed scene
    moved_after: float | None = None  # when its move was reported, after the move
    mistaken: list[str | None] = field(default_factory=list)  # a missed one's case type


def judge(scene: Scene, cases: list[CaseReport], events: list[tuple[str, float]]) -> Outcome:
    """Cases and scene changes (kind, media seconds) against what the scene planted."""
    out = Outcome(reseeds=len(events))
    left = list(cases)
    for planted in scene.planted:
        match = next(
            (
                c
                for c in left
                if planted.found_by(str(c.type), list(c.bbox))
                and (c.first_seen - START).total_seconds() >= planted.at_s - EARLY_S
                and c.confirmed_at is not None
            ),
            None,
        )
        if match is None:
            out.found.append(None)
            # What it was taken for, if anything: a stall reported as garbage, say.
            other = next(
                (str(c.type) for c in left if planted.found_by(planted.type, list(c.bbox))), None
            )
            out.mistaken.append(other)
            continue
        out.mistaken.append(None)
        left.remove(match)
        assert match.confirmed_at is not None
        out.found.append(
            (
                planted,
                (match.first_seen - START).total_seconds() - planted.at_s,
                (match.confirmed_at - START).total_seconds() - planted.at_s,
            )
        )
    out.false.update(str(c.type) for c in left)
    moved = [pts for kind, pts in events if kind == "moved"]
    if scene.moved_at is not None:
        out.moved = True
        hit = [t for t in moved if 0 <= t - scene.moved_at <= MOVED_WITHIN_S]
        if hit:
            out.moved_after = hit[0] - scene.moved_at
            moved.remove(hit[0])
    out.false["scene_changed"] += len(moved)
    return out


def _score(
    clip: Path, config: Config, engine: Engine, inferred: dict[int, Detections], work: Path
) -> tuple[list[CaseReport], list[tuple[str, float]]]:
    """The cases and scene changes of `score_camera` on the clip, as plain values (the
    baseline's scene events are of its own class)."""
    labels = labels_of(engine, config)
    evidence = EvidenceWriter(work / clip.stem)
    with scene_events() as events:
        result = score_camera(config.cameras[0], None, config, labels, evidence, inferred=inferred)
    if result.error:
        raise RuntimeError(f"{clip.name}: {result.error}")
    return result.cases, [(e.kind, e.pts) for e in events]


TYPES = ("garbage", "street_stall", "illegal_parking", "scene_changed")


def _false(o: Outcome) -> str:
    return " / ".join(str(o.false[t]) for t in TYPES)


def _found(o: Outcome) -> str:
    if o.moved:
        return "moved: **missed**" if o.moved_after is None else f"moved: {o.moved_after:+.1f}"
    parts = [
        f"{f[1]:+.1f} / {f[2]:+.1f}"
        if f is not None
        else "**missed**" + (f" (as {as_})" if as_ else "")
        for f, as_ in zip(o.found, o.mistaken, strict=True)
    ]
    return "; ".join(parts) or "-"


@cache
def _engine() -> Engine:
    """One engine a process (made where it is used: ONNX Runtime sessions do not fork)."""
    return engine_for(parse_config({"model": "default", "cameras": []}))


def _outcomes(name: str, baseline: str, model_sha: str) -> tuple[Outcome, Outcome]:
    """One scene's outcome under the baseline's modules and the current ones. The baseline's
    cases are kept beside the clip (a fixed revision on fixed detections gives the same
    cases every time), so a re-run after a change to the stage replays only the current."""
    scene = next(s for s in nuisance.long_scenes() if s.name == name)
    clip = nuisance.build(scene, work_dir() / "nuisance")
    config = _config(clip)
    inferred = _detections(clip, config, _engine(), model_sha)
    with tempfile.TemporaryDirectory(prefix="sw-robustness-") as tmp:
        kept = clip.with_name(f"{clip.stem}.{model_sha[:12]}.{baseline}.cases.pkl")
        if kept.exists():
            before = pickle.loads(kept.read_bytes())
        else:
            with stage_from(_detector_at(baseline)):
                before = _score(clip, config, _engine(), inferred, Path(tmp))
            part = kept.with_suffix(".part")
            part.write_bytes(pickle.dumps(before))
            part.replace(kept)
        after = _score(clip, config, _engine(), inferred, Path(tmp))
    return judge(scene, *before), judge(scene, *after)


_detector_at = cache(detector_at)


def run(baseline: str = BASELINE, only: list[str] | None = None, jobs: int = 1) -> str:
    """The section's tables; `only` names the scenes to run (default: all), `jobs` how many
    run at once (each in a process of its own)."""
    from models.default import fetch_default

    _, model = fetch_default()
    model_sha = sha256_file(model)
    scenes = [s for s in nuisance.long_scenes() if not only or s.name in only]
    rows = []
    by_family: dict[str, list[tuple[Scene, Outcome, Outcome]]] = {}
    # The longest first, so the others fill in around them.
    order = sorted(scenes, key=lambda s: -s.seconds)
    with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
        futures = {s.name: pool.submit(_outcomes, s.name, baseline, model_sha) for s in order}
        for scene in scenes:
            before, after = futures[scene.name].result()
            by_family.setdefault(scene.family, []).append((scene, before, after))
            rows.append(
                [
                    scene.name,
                    f"{scene.family}: {scene.strength}",
                    f"{scene.seconds / 60:g}",
                    _false(before),
                    _found(before),
                    before.reseeds,
                    _false(after),
                    _found(after),
                    after.reseeds,
                ]
            )
            print(f"robustness: {scene.name}: {rows[-1][3:]}", flush=True)
    detail = table(
        [
            "scene",
            "nuisance: strength",
            "min",
            f"{baseline}: false garbage / stall / parking / scene_changed",
            f"{baseline}: found, first seen / confirmed after (s)",
            f"{baseline}: re-seeds",
            "now: false garbage / stall / parking / scene_changed",
            "now: found",
            "now: re-seeds",
        ],
        rows,
    )
    summary = table(
        [
            "nuisance",
            "camera-hours",
            f"false alarms / camera-hour, {baseline}: garbage, stall, scene_changed",
            "now: the same",
            f"found, {baseline}",
            "found, now",
            f"first seen, median s after, {baseline} / now",
        ],
        [_family_row(family, runs) for family, runs in by_family.items()],
    )
    return (
        f"{summary}\n\n{detail}\n\n"
        f"Scenes: tests/support/nuisance.py's `long_scenes()`, {FPS_NOTE} one zone (the frame "
        "below y = 190, to its bottom edge) checking all three types; rules: dwell 20 s, "
        "clear 10 s for each type. "
        f"Baseline: detector/{{{', '.join(STAGE_MODULES)}}}.py at {baseline}, "
        "loaded from git into the current pipeline; now: the working tree's. Both score the "
        "same detections (the default model, YOLOv4-tiny fp32, inferred once per scene). "
        "Delays are media seconds from the object's appearance (first seen; confirmed "
        "includes the 20 s dwell).\n\n"
        f"Machine: {machine()}."
    )


FPS_NOTE = (
    f"vtest.avi at its own pace rendered at {nuisance.FPS} fps (768x576, H.264, a keyframe "
    f"every 2 s) and sampled at {nuisance.FPS} fps, fixed;"
)


def _family_row(family: str, runs: list[tuple[Scene, Outcome, Outcome]]) -> list[object]:
    hours = sum(s.seconds for s, _, _ in runs) / 3600

    def rate(i: int) -> str:
        counts: Counter[str] = Counter()
        for run_ in runs:
            counts.update(run_[i].false)
        return ", ".join(
            f"{counts[t] / hours:.1f}" for t in ("garbage", "street_stall", "scene_changed")
        )

    def found(i: int) -> str:
        hits = [f for run_ in runs for f in run_[i].found]
        moves = [run_[i].moved_after for run_ in runs if run_[i].moved]
        total = len(hits) + len(moves)
        got = sum(f is not None for f in hits) + sum(t is not None for t in moves)
        return f"{got} of {total}" if total else "-"

    def seen(i: int) -> str:
        delays = [f[1] for run_ in runs for f in run_[i].found if f is not None]
        return f"{statistics.median(delays):.1f}" if delays else "-"

    return [family, f"{hours:.2f}", rate(1), rate(2), found(1), found(2), f"{seen(1)} / {seen(2)}"]
