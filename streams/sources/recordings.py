"""Which recordings to score and whose they are: a directory, a glob or a CSV manifest, each
file tied to a configured camera (its zones and sampling) and to the wall time of its first
frame (from the manifest, from the file name by a pattern, else from the file itself)."""

from __future__ import annotations

import csv
import glob
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

from streams.config import CameraConfig, Config

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".ts", ".m4v", ".webm", ".flv"})
MANIFEST_COLUMNS = ("path", "camera_id", "start_time")
DEFAULT_TIME_FORMAT = "%Y%m%dT%H%M%S"


class RecordingsError(ValueError):
    """Inputs that name no recording at all, or a manifest that cannot be read."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One file to score, as the camera it came from (its `source` is the file)."""

    camera: CameraConfig

    @property
    def path(self) -> Path:
        return Path(self.camera.source)


@dataclass(frozen=True, slots=True)
class Unassigned:
    """A file that could not be tied to a camera of the config: reported, not scored."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A regular expression over the file name (stem) with the groups `camera` (a camera
    id) and/or `start` (its start time, parsed with `time_format` in `tz` unless it has
    an offset)."""

    regex: re.Pattern[str]
    time_format: str = DEFAULT_TIME_FORMAT
    tz: tzinfo = UTC

    @classmethod
    def parse(
        cls, pattern: str, time_format: str = DEFAULT_TIME_FORMAT, tz: str = "+00:00"
    ) -> NamePattern:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise RecordingsError(f"--name-pattern {pattern!r}: {exc}") from exc
        if not {"camera", "start"} & set(regex.groupindex):
            raise RecordingsError(
                f"--name-pattern {pattern!r} has neither a (?P<camera>...) nor a "
                "(?P<start>...) group"
            )
        return cls(regex, time_format, parse_offset(tz))

    def match(self, stem: str) -> tuple[str | None, datetime | None]:
        found = self.regex.search(stem)
        if found is None:
            raise ValueError(f"file name does not match --name-pattern {self.regex.pattern!r}")
        groups = found.groupdict()
        start = None
        if groups.get("start"):
            start = datetime.strptime(groups["start"], self.time_format)
            if start.tzinfo is None:
                start = start.replace(tzinfo=self.tz)
        return groups.get("camera"), start


def parse_offset(value: str) -> tzinfo:
    """'+08:00', '-0530' or 'UTC' as a fixed offset."""
    if value.upper() in ("UTC", "Z"):
        return UTC
    found = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", value)
    if found is None:
        raise RecordingsError(f"time zone {value!r}: expected an offset like +08:00, or UTC")
    sign = 1 if found[1] == "+" else -1
    return timezone(sign * timedelta(hours=int(found[2]), minutes=int(found[3])))


def expand(inputs: list[str]) -> list[tuple[Path, str | None, datetime | None]]:
    """Each input's files, in a deterministic order (manifests keep theirs, directories and
    globs are sorted), with the camera id and start time a manifest gives them."""
    found: list[tuple[Path, str | None, datetime | None]] = []
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() == ".csv" and path.is_file():
            found.extend(read_manifest(path))
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not files:
                raise RecordingsError(
                    f"{path}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})"
                )
            found.extend((p, None, None) for p in files)
        elif path.is_file():
            found.append((path, None, None))
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise RecordingsError(f"{item}: no such file, directory or matching files")
            found.extend((p, None, None) for p in matches)
    return found


def read_manifest(path: Path) -> list[tuple[Path, str | None, datetime | None]]:
    """A CSV with a header `path,camera_id,start_time` (start time ISO 8601 with an offset,
    or empty); relative paths are relative to the manifest."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS[:2] if c not in (reader.fieldnames or [])]
        if missing:
            raise RecordingsError(
                f"{path}: manifest lacks the column(s) {', '.join(missing)} "
                f"(header: {','.join(MANIFEST_COLUMNS)})"
            )
        for line, row in enumerate(reader, start=2):
            file = Path(row["path"])
            if not file.is_absolute():
                file = path.parent / file
            start = None
            if row.get("start_time"):
                try:
                    start = datetime.fromisoformat(row["start_time"])
                except ValueError as exc:
                    raise RecordingsError(f"{path}:{line}: start_time: {exc}") from exc
                if start.tzinfo is None:
                    raise RecordingsError(f"{path}:{line}: start_time needs an offset (+08:00)")
            rows.append((file, row["camera_id"] or None, start))
    if not rows:
        raise RecordingsError(f"{path}: the manifest lists no files")
    return rows


def recordings(
    inputs: list[str], config: Config, pattern: NamePattern | None = None
) -> tuple[list[Recording], list[Unassigned]]:
    """The recordings the inputs name, each as its camera of `config` with the file as its
    source. The camera comes from the manifest, else the pattern's `camera` group, else the
    file's stem; the start time from the manifest, else the pattern's `start` group, else
    (at scoring) the file's own creation time."""
    cameras = {c.id: c for c in config.cameras}
    out: list[Recording] = []
    unassigned: list[Unassigned] = []
    for path, camera_id, start in expand(inputs):
        try:
            named_camera, named_start = pattern.match(path.stem) if pattern else (None, None)
        except ValueError as exc:
            unassigned.append(Unassigned(path, str(exc)))
            continue
        cam_id = camera_id or named_camera or path.stem
        camera = cameras.get(cam_id)
        if camera is None:
            unassigned.append(Unassigned(path, f"no camera {cam_id!r} in the config"))
            continue
        # Not the camera's own start_time: that dates the file in its `source`, not this one.
        update = {"source": str(path), "start_time": start or named_start}
        out.append(Recording(camera.model_copy(update=update)))
    return out, unassigned


def config_recordings(config: Config) -> list[Recording]:
    """Today's mode: every camera of the config whose source is a file."""
    return [Recording(c) for c in config.cameras if not c.is_live]
