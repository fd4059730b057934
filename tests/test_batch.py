"""Batch scoring of many recordings: in one process, on a local Ray runtime, and on two Ray
nodes started on loopback as processes of their own; resumable, and the same output
everywhere. Real model, real street footage (vtest.avi) with a real bus photo parked on it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from models.cache import HOME_ENV, home
from streams.camera.runtime import sampling_for
from streams.cli import main
from streams.config import CameraConfig, load_config
from streams.offline.chunks import plan_spans
from streams.offline.job import ScoreProgress, ScoreRequest, ScoreRequestError, score_recordings
from streams.offline.scoring import CameraResult
from streams.sources.files import FileSource
from streams.sources.recordings import NamePattern, RecordingsError, Unassigned, recordings
from tests.support.scenes import BUS_CROP, Sprite, crop, render, still_frames, video_frames
from tests.test_scoring import BAY, PARK_AT, RULES

FPS = 5
CHUNK_S = "8"  # the long clip is cut into spans that a parked bus's dwell crosses
PATTERN = r"(?P<camera>[a-z-]+)_(?P<start>\d{8}T\d{6})"
STALL_ZONE = [[0, 330], [330, 330], [330, 570], [0, 570]]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, vtest_avi, bus_jpg) -> Path:
    """A directory of recordings named camera_start, one of them not a video at all."""
    out = tmp_path_factory.mktemp("recorded")
    bus = crop(bus_jpg, BUS_CROP, 300)
    arrive, leave = (-300, PARK_AT[1]), (800, PARK_AT[1])
    scenes = {
        # Parks from 2 s to 22 s: one case, cleared.
        "cam-a_20260501T080000": (
            30,
            Sprite(bus)
            .moving(0, 2, arrive, PARK_AT)
            .parked(2, 22, PARK_AT)
            .moving(22, 24, PARK_AT, leave),
        ),
        # Crosses without stopping: nothing.
        "cam-a_20260501T100000": (16, Sprite(bus).moving(4, 12, arrive, leave)),
        # Parks from 7 s to the end: the dwell crosses a span boundary.
        "cam-b_20260501T090000": (
            40,
            Sprite(bus).moving(5, 7, arrive, PARK_AT).parked(7, 40, PARK_AT),
        ),
    }
    for name, (duration, sprite) in scenes.items():
        render(out / f"{name}.mp4", video_frames(vtest_avi), duration, FPS, [sprite])
    # One frame held with the bus parked: the motion gate skips most samples, across spans.
    still = next(video_frames(vtest_avi))
    parked = Sprite(bus).parked(0, 20, PARK_AT)
    render(out / "cam-a_20260501T120000.mp4", still_frames(still), 20, FPS, [parked])
    (out / "cam-b_20260501T110000.mp4").write_bytes(b"\x00\x01not a video" * 500)
    return out


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    def cam(cam_id: str, zones: list[dict]) -> dict:
        return {"id": cam_id, "source": "recorded.mp4", "sample": {"fps": 2}, "zones": zones}

    bay = {"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}
    grass = {"id": "grass", "polygon": STALL_ZONE, "checks": ["street_stall", "garbage"]}
    config = {
        "model": "default",
        # The gate on: a span's frames reuse detections as the whole-file pass's would.
        "detector": {"motion_gate": True},
        "rules": RULES,
        "cameras": [cam("cam-a", [bay]), cam("cam-b", [bay, grass])],
    }
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def score(config: Path, out: Path, evidence: Path, *extra: str) -> int:
    argv = ["score", "--config", str(config), "--out", str(out), "--evidence-dir", str(evidence)]
    return main([*argv, *extra])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def single(default_model, recorded, config_path, tmp_path_factory) -> tuple[Path, Path]:
    """The single-process run everything else is compared with (and its evidence)."""
    tmp = tmp_path_factory.mktemp("single")
    out, evidence = tmp / "cases.jsonl", tmp / "evidence"
    assert score(config_path, out, evidence, str(recorded), "--name-pattern", PATTERN) == 1
    return out, evidence


def test_single_process_scores_each_file_as_its_camera_and_reports_the_broken_one(
    single, recorded, config_path, tmp_path, capsys
):
    out, evidence = single
    cases = lines(out)
    by_camera = sorted(
        (c["camera_id"], c["first_seen"][:13]) for c in cases if c["zone_id"] == "bay"
    )
    # cam-a's 08:00 and 12:00 files park once, its 10:00 file never; cam-b's 09:00 once.
    assert by_camera == [
        ("cam-a", "2026-05-01T08"),
        ("cam-a", "2026-05-01T12"),
        ("cam-b", "2026-05-01T09"),
    ]
    assert all(Path(ref["path"]).is_file() for c in cases for ref in c["evidence"])

    # A re-run skips every file already scored (the broken one is tried again) and writes
    # the same output.
    again = tmp_path / "again.jsonl"
    shutil.copytree(out.with_name("cases.jsonl.parts"), tmp_path / "parts")
    capsys.readouterr()
    code = score(
        config_path,
        again,
        evidence,
        str(recorded),
        "--name-pattern",
        PATTERN,
        "--work-dir",
        str(tmp_path / "parts"),
    )
    printed = capsys.readouterr()
    assert code == 1
    assert "4 of 5 files already scored" in printed.err
    assert "cam-b_20260501T110000.mp4" in printed.err and "failed: " in printed.out
    assert "scored 4/5 files: 0 frames" in printed.out
    assert again.read_bytes() == out.read_bytes()


class Watcher(ScoreProgress):
    """Keeps what a job told it, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.ticked = 0

    def unassigned(self, miss: Unassigned) -> None:
        self.events.append(("unassigned", miss.path.name, miss.reason))

    def begin(self, todo: int, done: int, frames: int | None, parts_dir: Path) -> None:
        self.events.append(("begin", todo, done, frames is not None and frames > 0, parts_dir))

    def tick(self, frames: int) -> None:
        self.ticked += frames

    def finished(self, result: CameraResult, path: Path, frames_left: int) -> None:
        self.events.append(("finished", path.name, result.error is None, len(result.cases)))


def test_the_job_called_directly_scores_reports_and_resumes(
    single, recorded, config_path, tmp_path
):
    """`score_recordings`, the function under `streetwatch score`: a file of the batch, the
    broken one and one of a camera the config lacks give the single run's case for that
    file, each miss named; run again, it skips the file it scored."""
    out, evidence = single
    elsewhere = tmp_path / "cam-z_20260501T080000.mp4"
    shutil.copy(recorded / "cam-a_20260501T080000.mp4", elsewhere)
    request = ScoreRequest(
        config=load_config(config_path),
        out=tmp_path / "cases.jsonl",
        evidence_dir=evidence,
        recordings=(
            str(recorded / "cam-a_20260501T080000.mp4"),
            str(recorded / "cam-b_20260501T110000.mp4"),
            str(elsewhere),
        ),
        pattern=NamePattern.parse(PATTERN),
    )
    watcher = Watcher()
    summary = score_recordings(request, watcher)

    parts = tmp_path / "cases.jsonl.parts"
    assert watcher.events == [
        ("unassigned", elsewhere.name, "no camera 'cam-z' in the config"),
        ("begin", 2, 0, True, parts),
        ("finished", "cam-a_20260501T080000.mp4", True, 1),
        ("finished", "cam-b_20260501T110000.mp4", False, 0),
    ]
    assert (summary.files, summary.scored, summary.parts_dir) == (3, 1, parts)
    assert summary.failed == [elsewhere.name, "cam-b_20260501T110000.mp4"]
    assert summary.frames == watcher.ticked > 0
    # The same case, with the same evidence, as the whole batch gave for that file.
    expected = [c for c in lines(out) if c["first_seen"].startswith("2026-05-01T08")]
    assert [c.model_dump(mode="json") for c in summary.cases] == expected
    assert lines(request.out) == expected

    again = Watcher()
    summary = score_recordings(request, again)
    assert again.events[1] == ("begin", 1, 1, False, parts)  # only the broken file again
    assert (summary.scored, summary.frames) == (1, 0)
    assert lines(request.out) == expected

    with pytest.raises(ScoreRequestError, match="--workers is a positive number"):
        ScoreRequest(config=request.config, out=request.out, evidence_dir=evidence, workers=2)


def test_local_ray_runtime_gives_the_single_process_output(
    single, recorded, config_path, tmp_path, capsys, caplog
):
    """On two local workers, the 40 s file cut into spans of 8 s (the bus's dwell crosses
    their boundaries): byte for byte the single process's output."""
    caplog.set_level(logging.INFO, logger="streams.offline.ray_batch")
    out, evidence = single
    ray_out = tmp_path / "ray.jsonl"
    code = score(
        config_path,
        ray_out,
        evidence,
        str(recorded),
        "--name-pattern",
        PATTERN,
        "--ray",
        "--workers",
        "2",
        "--chunk-s",
        CHUNK_S,
    )
    printed = capsys.readouterr()
    assert code == 1, printed.err
    assert "cam-b_20260501T110000.mp4" in printed.err
    assert "cam-b_20260501T090000.mp4: inferred in 5 keyframe spans" in caplog.text
    assert "cam-a_20260501T120000.mp4: inferred in 2 keyframe spans" in caplog.text
    assert ray_out.read_bytes() == out.read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_nodes(tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray head and a second node on loopback, each a process group of its own (stopped
    by signalling those groups, never `ray stop`, which would stop every Ray on the
    machine), with an auth token of their own; yields the address and the environment a
    driver needs (the token: Ray caches the one a process saw first, so drivers of this
    cluster are processes of their own)."""
    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = os.environ | {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        HOME_ENV: str(home()),  # the workers' model cache: this session's
    }
    # Ray's socket paths must stay under 107 bytes: a short directory of its own.
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--block"]
    common += ["--disable-usage-stats", "--temp-dir", str(temp)]
    head = [str(ray), "start", "--head", "--port", str(port), "--include-dashboard", "false"]
    worker = [str(ray), "start", "--address", address]
    procs = []
    log = open(tmp_path / "ray.log", "wb")  # noqa: SIM115 - held for the fixture's life
    try:
        for cmd in (head + common, worker + common):
            procs.append(
                subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
            )
            if len(procs) == 1:
                wait_for_port(port, 120)
        yield address, env
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # still draining: nothing left to drain
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Ray head not listening on {port} after {timeout_s} s")


NODES_UP = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
deadline = time.monotonic() + 120
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
print(len([n for n in ray.nodes() if n["Alive"]]), int(ray.cluster_resources().get("CPU", 0)))
"""


def test_two_ray_nodes_give_the_single_process_output(
    single, recorded, config_path, two_nodes, tmp_path
):
    address, env = two_nodes
    up = subprocess.run(
        [sys.executable, "-c", NODES_UP, address], env=env, capture_output=True, text=True
    )
    assert up.stdout.split() == ["2", "2"], up.stderr[-2000:]  # two nodes of one CPU each
    out, evidence = single
    ray_out = tmp_path / "cluster.jsonl"
    argv = [sys.executable, "-m", "streams.cli", "score", str(recorded)]
    argv += ["--config", str(config_path), "--out", str(ray_out), "--evidence-dir", str(evidence)]
    argv += ["--name-pattern", PATTERN, "--ray-address", address, "--chunk-s", CHUNK_S]
    scored = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert scored.returncode == 1, scored.stderr[-3000:]  # the broken file
    assert "scored 4/5 files" in scored.stdout
    assert ray_out.read_bytes() == out.read_bytes()


def test_spans_decode_the_frames_the_whole_file_does(recorded):
    """Cut at keyframes (B-frames and all), the spans give the same samples: same indices,
    same media times, same pixels."""
    path = recorded / "cam-b_20260501T090000.mp4"
    zone = {"id": "z", "polygon": BAY, "checks": ["illegal_parking"]}
    camera = CameraConfig.model_validate(
        {"id": "cam-b", "source": str(path), "sample": {"fps": 2}, "zones": [zone]}
    )
    spans = plan_spans(camera, 8.0)
    assert len(spans) >= 4
    whole = [
        (f.index, f.pts, f.image.tobytes())
        for f in FileSource("b", path, sampling_for(camera)).frames()
    ]
    cut = [
        (f.index, f.pts, f.image.tobytes())
        for span in spans
        for f in FileSource("b", path, sampling_for(camera), span=span).frames()
    ]
    assert [w[:2] for w in whole] == [c[:2] for c in cut]
    assert whole == cut


def test_manifest_and_name_pattern_tie_files_to_cameras(recorded, config_path, tmp_path):
    config = load_config(config_path)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "path,camera_id,start_time\n"
        f"{recorded / 'cam-a_20260501T100000.mp4'},cam-b,2026-05-02T07:00:00+08:00\n"
        f"{recorded / 'cam-a_20260501T080000.mp4'},nowhere,\n"
    )
    found, unassigned = recordings([str(manifest)], config)
    assert [(r.camera.id, r.camera.start_time.isoformat()) for r in found] == [
        ("cam-b", "2026-05-02T07:00:00+08:00")
    ]
    assert [u.reason for u in unassigned] == ["no camera 'nowhere' in the config"]

    pattern = NamePattern.parse(PATTERN, tz="+08:00")
    found, unassigned = recordings([str(recorded / "*.mp4")], config, pattern)
    assert [(r.camera.id, r.camera.start_time.isoformat()[11:16]) for r in found] == [
        ("cam-a", "08:00"),
        ("cam-a", "10:00"),
        ("cam-a", "12:00"),
        ("cam-b", "09:00"),
        ("cam-b", "11:00"),
    ]
    assert found[0].camera.start_time.utcoffset().total_seconds() == 8 * 3600
    assert not unassigned

    with pytest.raises(RecordingsError, match="neither"):
        NamePattern.parse(r"\d+")
    with pytest.raises(RecordingsError, match="no such file"):
        recordings([str(tmp_path / "missing-*.mp4")], config)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,camera\nx.mp4,cam-a\n")
    with pytest.raises(RecordingsError, match="lacks the column"):
        recordings([str(bad)], config)


def test_bad_batch_arguments_are_refused_before_any_work(config_path, tmp_path, capsys):
    out, evidence = tmp_path / "cases.jsonl", tmp_path / "evidence"
    for extra, says in [
        (["--workers", "2"], "--workers is a positive number, with --ray"),
        (["--ray", "--workers", "0"], "--workers is a positive number"),
        (["--chunk-s", "-1"], "--chunk-s must be >= 0"),
        ([str(tmp_path / "none-*.mp4")], "no such file, directory or matching files"),
        ([str(tmp_path), "--name-pattern", "("], "--name-pattern '('"),
        ([str(tmp_path), "--name-pattern", r"(?P<camera>\w+)", "--tz", "+8"], "time zone '+8'"),
    ]:
        (tmp_path / "clip.mp4").touch()
        assert score(config_path, out, evidence, *extra) == 2, extra
        assert says in capsys.readouterr().err
        assert not out.exists()
