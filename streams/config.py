"""The one YAML configuration file, validated before any work starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from api.contract import IncidentType, Location
from api.contract.codes import DEFAULT_CODES, CodeTable
from api.contract.suppression_rules import Schedule
from detector.ground import CalibrationError, GroundCalibration
from detector.providers import Provider
from detector.rules import DEFAULT_RULES, RuleParams
from detector.static_objects import StaticParams

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class ConfigError(ValueError):
    """A configuration that cannot be used; `problems` are "yaml.path: message" lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: invalid configuration\n  " + "\n  ".join(problems))
        self.problems = problems


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleConfig(Strict):
    """How often a camera is looked at: `fps` samples per second, or keyframes only, while
    its rules follow something; adaptive cameras slow down while they have nothing to follow
    (see streams.sources.sampling)."""

    fps: float | None = Field(
        default=None,
        gt=0,
        le=120,
        description="samples per second while the rules follow something; 2 unless "
        "`keyframes` is set",
    )
    keyframes: bool = Field(
        default=False, description="sample every keyframe instead of at `fps` (one decode per GOP)"
    )
    adaptive: bool = Field(
        default=True,
        description="sample slower while no rule has anything to follow (false: a fixed rate)",
    )
    max_interval_s: float = Field(
        default=10.0, gt=0, le=600, description="an adaptive camera's longest wait between samples"
    )

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        if self.fps is not None and self.keyframes:
            raise ValueError("set either fps or keyframes: true, not both")
        if self.fps is None and not self.keyframes:
            self.fps = 2.0
        return self

    @property
    def max_gap_s(self) -> float:
        """Samples further apart than this mean the camera was not watching (an outage)."""
        return max(1.0, 3.0 / self.fps) if self.fps else 10.0


class ZoneConfig(Strict):
    id: Identifier = Field(description="the zone's id, unique within its camera")
    polygon: list[tuple[float, float]] = Field(
        min_length=3, description="x, y corners in the source frame's pixels"
    )
    checks: list[IncidentType] = Field(
        min_length=1, description="the incident types this zone's rules look for"
    )
    min_object_area: float | None = Field(
        default=None,
        gt=0,
        description="smallest static object (garbage, stall stand-in) in this zone, in source "
        "pixels; unset: a perspective-aware default (detector.static_objects)",
    )
    schedule: Schedule | None = Field(
        default=None,
        description="the hours this zone's rules apply (no-parking 07:00-09:00, say); "
        "unset: always. Incidents confirmed outside them are held, reported if still there "
        "when the hours begin (streams.camera.suppressions)",
    )


class CalibrationPoint(Strict):
    image: tuple[float, float] = Field(description="x, y in the camera's frame, on the street")
    lat: float = Field(ge=-90, le=90, description="latitude of that point on the map")
    lon: float = Field(ge=-180, le=180, description="longitude of that point on the map")


class CalibrationConfig(Strict):
    """Image points on the street surface with their place on the map: incidents then carry
    their own position, and merging across cameras compares positions."""

    points: list[CalibrationPoint] = Field(
        min_length=4, description="four or more points of the street surface, on one plane"
    )

    @model_validator(mode="after")
    def _fixes_a_plane(self) -> Self:
        self.ground()  # raises with the reason
        return self

    def ground(self) -> GroundCalibration:
        try:
            return GroundCalibration(
                [p.image for p in self.points], [(p.lat, p.lon) for p in self.points]
            )
        except CalibrationError as exc:
            raise ValueError(f"unusable ground calibration: {exc}") from None


class CameraConfig(Strict):
    id: Identifier = Field(description="the camera's id, unique in the config (and the fleet)")
    source: str = Field(min_length=1, description="a video file path or an rtsp:// url")
    record_source: str | None = Field(
        default=None,
        pattern=r"^rtsps?://",
        description="the camera's main stream, when `source` is its sub-stream: evidence "
        "frames of live incidents come from it (see streams.camera.record)",
    )
    start_time: AwareDatetime | None = Field(
        default=None, description="wall time of a file's first frame (ISO 8601 with offset)"
    )
    location: Location = Field(
        default_factory=Location, description="where the camera is, sent with every report"
    )
    calibration: CalibrationConfig | None = Field(
        default=None,
        description="ground calibration: reports then carry the object's own map position",
    )
    sample: SampleConfig = Field(
        default_factory=SampleConfig, description="how often the camera is looked at"
    )
    zones: list[ZoneConfig] = Field(
        min_length=1, description="where the rules apply, each with the types it checks"
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        description="registry name of the one model this camera runs, for every type its "
        "zones check (default: each type's in `models_by_type`, else the config's `model`)",
    )

    @property
    def is_live(self) -> bool:
        return self.source.startswith(("rtsp://", "rtsps://"))

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        _refuse_duplicates([z.id for z in zones], "zone id")
        return zones


def _rules_with_defaults(value: object) -> object:
    """Every incident type's rule, a partial override ({dwell_s: 60}) keeping the rest."""
    if not isinstance(value, dict):
        return value
    merged: dict[object, object] = {t.value: p.model_dump() for t, p in DEFAULT_RULES.items()}
    for key, override in value.items():
        default = merged.get(key)
        both = isinstance(default, dict) and isinstance(override, dict)
        merged[key] = default | override if both else override
    return merged


RulesConfig = Annotated[dict[IncidentType, RuleParams], BeforeValidator(_rules_with_defaults)]


DEFAULT_KEY_ENV = "STREETWATCH_API_KEY"


class ApiConfig(Strict):
    url: str = Field(pattern=r"^https?://", description="the intake API's base URL")
    key_env: str = Field(
        default=DEFAULT_KEY_ENV, description="environment variable holding the API key"
    )
    # The review feedback loop (streams.camera.suppressions, streams.live.health_report).
    suppressions_poll_s: float = Field(
        default=30.0, gt=0, description="how often the reviewers' suppressions are fetched"
    )
    health_every_s: float = Field(
        default=60.0, gt=0, description="how often camera health and a thumbnail are reported"
    )


class DetectorConfig(Strict):
    conf_threshold: float = Field(
        default=0.25, gt=0, lt=1, description="detections scoring below this are dropped"
    )
    iou_threshold: float = Field(
        default=0.45, gt=0, lt=1, description="overlap at which non-maximum suppression merges"
    )
    rect: bool = Field(
        default=False,
        description="aspect-preserving model input for models with dynamic H/W: fewer pixels "
        "per frame (a 16:9 frame at 416x256, not 416x416), detections shift slightly",
    )
    motion_gate: bool = Field(
        default=False,
        description="skip inference on frames where nothing moved since the last inferred "
        "one, reusing its detections (see detector.motion)",
    )
    static_objects: StaticParams = Field(
        default_factory=StaticParams,
        description="the static-object stage that stands in for garbage and stalls "
        "(see detector.static_objects); which types it feeds is each rule's `stand_in`",
    )
    plates: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="read the licence plate of each confirmed illegal_parking site over its "
        "dwell (detector.plates): auto reads plates when the plate models are fetched "
        "(`streetwatch models fetch plates`) and says once at start when they are not; on "
        "refuses to start without them; off never reads plates",
    )
    parallel_runs: int | None = Field(
        default=None,
        ge=1,
        description="single-threaded inference runs side by side; default one per core. 1 "
        "runs every batch as one run on all cores: the lowest latency per frame, for a lone "
        "camera sampled faster than one core keeps up with",
    )
    providers: tuple[Provider, ...] = Field(
        default=("auto",),
        min_length=1,
        description="ONNX Runtime execution providers in the order wanted: cpu, cuda, "
        "tensorrt, openvino; auto: every accelerator this onnxruntime has (TensorRT, CUDA, "
        "OpenVINO). The CPU always comes last; what runs, and why not what was asked, is "
        "logged once. On an accelerator parallel_runs defaults to 1",
    )


class ShadowConfig(Strict):
    """A candidate model on trial beside the live one (`streetwatch run` only)."""

    model: str = Field(min_length=1, description="registry name of the candidate model")
    cameras: list[Identifier] | None = Field(
        default=None, description="the cameras it runs on (default: every camera)"
    )


Decode = Literal["cpu", "auto", "cuda", "vaapi", "qsv", "videotoolbox"]
"""Where cameras are decoded (streams.sources.hwdecode)."""

Receive = Literal["pyav", "ffmpeg", "chunked"]
"""What receives a keyframe-sampled camera (streams.sources.rtsp, streams.sources.ffmpeg_rtsp,
streams.sources.chunked_rtsp)."""


class WorkerConfig(Strict):
    """How `streetwatch run` uses the host (read at start: a change takes a restart)."""

    processes: int | None = Field(
        default=None,
        ge=1,
        description="worker processes, each over its stable share of the cameras with its own "
        "state sub-directory (`run --processes` overrides it); default one per core as long "
        "as each gets 32 cameras, 1 for a fleet worker; 1 runs everything in one process",
    )
    decode: Decode = Field(
        default="cpu",
        description="where cameras are decoded: cpu; cuda, vaapi, qsv or videotoolbox (FFmpeg's "
        "hardware decoding); auto: the first of those that opens. Tried once at start; "
        "without it the worker decodes on the CPU and says why",
    )
    receive: Receive = Field(
        default="chunked",
        description="what receives cameras sampled at keyframes (`sample: {keyframes: true}`): "
        "pyav, in the worker's process; ffmpeg, an ffmpeg child per camera that passes only "
        "keyframes to the worker (needs FFmpeg 5.0 or later on PATH; H.264 or H.265 cameras "
        "that send IDR keyframes); chunked, StreetWatch's own RTSP client in the worker's "
        "process, which reads each camera's socket in chunks and keeps only keyframes (H.264 "
        "or H.265 over rtsp://; a camera it cannot read, or whose answers it does not "
        "understand, is received by pyav). Cameras sampled at an fps "
        "are always received by PyAV",
    )


class Config(Strict):
    model: str = Field(default="default", description="registry name or path to a model")
    shadow: ShadowConfig | None = Field(
        default=None,
        description="run a candidate model on the same frames: its incidents are logged and "
        "counted (streetwatch_shadow_incidents_total), never posted",
    )
    detector: DetectorConfig = Field(
        default_factory=DetectorConfig, description="inference and detector-stage settings"
    )
    rules: RulesConfig = Field(
        default_factory=lambda: dict(DEFAULT_RULES),
        description="rule parameters per incident type; a type's fields left out keep their "
        "defaults",
    )
    event_codes: CodeTable = Field(
        default_factory=lambda: DEFAULT_CODES.model_copy(deep=True),
        description="the city's event-code table, the format `streetwatch serve --codes` reads",
    )
    models_by_type: dict[IncidentType, Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict,
        description="a model per incident type: cameras whose zones check that type run it "
        "for that type (a camera checking types of two models runs both on each frame); "
        "other types run the config's `model`",
    )
    api: ApiConfig | None = Field(
        default=None, description="where to post cases; needed by `run` and `score --post`"
    )
    worker: WorkerConfig = Field(
        default_factory=WorkerConfig, description="how `streetwatch run` spreads over the host"
    )
    cameras: list[CameraConfig] = Field(
        default_factory=list,
        description="the cameras; `run --fleet` takes them from the API instead "
        "(`streetwatch cameras import` puts these there)",
    )

    def models_of(self, camera: CameraConfig) -> dict[str, frozenset[IncidentType]]:
        """The models a camera runs, each with the types it serves there: the camera's own
        for every type, else each type's (`models_by_type`), the config's for the rest."""
        checks = {t for z in camera.zones for t in z.checks}
        if camera.model is not None:
            return {camera.model: frozenset(checks)}
        served: dict[str, set[IncidentType]] = {}
        for t in sorted(checks):
            served.setdefault(self.models_by_type.get(t, self.model), set()).add(t)
        return {name: frozenset(types) for name, types in sorted(served.items())}

    @field_validator("event_codes")
    @classmethod
    def _every_type_has_a_code(cls, table: CodeTable) -> CodeTable:
        missing = sorted({t.value for t in IncidentType} - {c.type.value for c in table.codes})
        if missing:
            raise ValueError(f"no code for {', '.join(missing)}")
        return table

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        _refuse_duplicates([c.id for c in cameras], "camera id")
        return cameras


def _refuse_duplicates(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} {i!r}")
        seen.add(i)


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def parse_config(data: object, source: str = "<config>", base_dir: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_yaml_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(source, problems) from None
    if base_dir is not None:
        for cam in config.cameras:
            if not cam.is_live and not Path(cam.source).is_absolute():
                cam.source = str((base_dir / cam.source).resolve())
    return config


def load_config(path: str | Path) -> Config:
    """Reads and validates a config file; relative sources resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(path), [f"{where}not valid YAML: {exc}"]) from None
    return parse_config(data, str(path), path.parent.resolve())


def api_key(config: Config | None = None, key_env: str | None = None) -> tuple[str, str | None]:
    """The intake API key from the environment, found the one way every command and the
    worker find it: the variable `key_env` names (a command's --key-env), else the config's
    `api.key_env`, else STREETWATCH_API_KEY. Returns (that variable, its value or None)."""
    if key_env is None:
        key_env = config.api.key_env if config is not None and config.api else DEFAULT_KEY_ENV
    return key_env, os.environ.get(key_env) or None
