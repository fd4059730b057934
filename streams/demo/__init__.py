"""`make demo` (`python -m streams.demo`): the main job on embedded defaults, on real street
footage. A checkout only: it serves its clip with the test cameras of tests/support and is
left out of the wheel (pyproject.toml).

Builds a clip from real material that a fresh machine can get from the package registries
(vtest.avi, real street footage from Debian's opencv-doc, with a van parked at the top right;
the bus from the model wheel's bus.jpg driving in, parking for 45 s and leaving), scores it
offline with the default model and prints the cases and their evidence; then runs the live
path on this machine: the clip served by a loopback RTSP camera, `streetwatch run` watching
it, `streetwatch serve` taking the cases, which are shown as the API holds them.

May import `streams.cli` (it drives the command line as a user would), `models` and the
test cameras and scenes of `tests.support`; nothing imports it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import STDOUT, Popen, TimeoutExpired, run

import httpx
import yaml

from models.default import fetch_default
from models.samples import OPENCV_DATA, VTEST_AVI, sample_path
from streams.cli import main as cli
from tests.support.scenes import BUS_CROP, Sprite, crop, render, video_frames
from tests.support.testcam import RtspServer, free_port, wait_until

__all__ = ["main"]

OUT = Path("out/demo")
CLIP_SECONDS = 75
PARK_AT = (420, 300)

CONFIG = {
    "model": "default",
    "rules": {
        # Shorter than production defaults so the demo fits in a minute of video.
        "illegal_parking": {"dwell_s": 20, "clear_s": 10, "occlusion_s": 10},
        "street_stall": {"dwell_s": 30, "clear_s": 10},
        "garbage": {"dwell_s": 20, "clear_s": 10},
    },
    "cameras": [
        {
            "id": "cam-001",
            "source": "cam-001.mp4",
            "start_time": "2026-05-01T08:00:00+08:00",
            "location": {
                "lat": 26.5823,
                "lon": 101.7186,
                "address": "Bingcao Road, east gate",
                "grid": "510402001001",
            },
            "sample": {"fps": 2},
            "zones": [
                {
                    "id": "no-parking-east",
                    "polygon": [[640, 40], [730, 40], [730, 105], [640, 105]],
                    "checks": ["illegal_parking"],
                },
                {
                    "id": "fire-lane",
                    "polygon": [[380, 380], [767, 380], [767, 560], [380, 560]],
                    "checks": ["illegal_parking", "street_stall"],
                },
                {
                    "id": "plaza",
                    "polygon": [[200, 160], [620, 160], [620, 330], [200, 330]],
                    "checks": ["street_stall", "garbage"],
                },
            ],
        }
    ],
}


def build_clip(path: Path) -> Path:
    if not VTEST_AVI.is_file():
        sys.exit(f"error: {VTEST_AVI} is missing; run scripts/system-deps.sh (opencv-doc)")
    bus = (
        Sprite(crop(sample_path("bus.jpg"), BUS_CROP, 300))
        .moving(5, 8, (-300, PARK_AT[1]), PARK_AT)
        .parked(8, 53, PARK_AT)
        .moving(53, 56, PARK_AT, (800, PARK_AT[1]))
    )
    # A cardboard box (opencv-doc's photo) dumped on the plaza, where people walk past it,
    # and taken away again: the default model has no garbage class; the static stage finds it.
    heap = Sprite(crop(OPENCV_DATA / "box.png", (0, 0, 324, 223), 70)).parked(30, 62, (400, 230))
    print(f"building a {CLIP_SECONDS} s street clip -> {path}")
    return render(path, video_frames(VTEST_AVI), CLIP_SECONDS, 10, [bus, heap])


def show(cases_path: Path) -> None:
    cases = [json.loads(line) for line in cases_path.read_text().splitlines()]
    print(f"\n{len(cases)} case(s) from offline scoring:")
    for c in cases:
        cleared = c["cleared_at"]
        print(
            f"- {c['type']} ({c['event_code']}) on {c['camera_id']}/{c['zone_id']}: "
            f"{c['class_name']} {c['confidence']:.2f}\n"
            f"    first seen {c['first_seen']}, confirmed {c['confirmed_at']}, "
            + (f"cleared {cleared}" if cleared else "not cleared: still there at the end")
        )
        for ev in c["evidence"]:
            print(f"    evidence {ev['kind']}: {ev['path']}")
    print(f"(evidence: the unaltered frames; with the boxes drawn: {OUT}/evidence/annotated/)")


@contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Popen]:
    """A child process writing to `log`, stopped with SIGTERM (then SIGKILL) at the end."""
    with open(log, "w") as out:
        child = Popen(argv, stdout=out, stderr=STDOUT, env=env)
        try:
            yield child
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except TimeoutExpired:
                child.kill()
                child.wait()


def live(clip: Path) -> int:
    """The live path: a loopback RTSP camera, `streetwatch run`, `streetwatch serve`."""
    api_dir = OUT / "api"
    shutil.rmtree(api_dir, ignore_errors=True)
    shutil.rmtree(OUT / "worker", ignore_errors=True)
    cli_cmd = [sys.executable, "-m", "streams.cli"]
    created = run(
        [*cli_cmd, "keys", "create", "--data-dir", str(api_dir), "--scope", "ingest,dispatch",
         "--name", "demo"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]
    api_url = f"http://127.0.0.1:{free_port()}"
    port = api_url.rsplit(":", 1)[1]
    headers = {"Authorization": f"Bearer {key}"}
    print(f"\nLive: API at {api_url}, a loopback RTSP camera playing the clip, a worker.")
    with (
        process(
            [*cli_cmd, "serve", "--data-dir", str(api_dir), "--host", "127.0.0.1", "--port", port],
            OUT / "api.log",
        ),
        RtspServer({"cam-001": clip}, fps=10, width=768, height=576, keyint=20) as camera,
    ):
        wait_until(lambda: _get(f"{api_url}/readyz", {}), 60, "the API")
        config = CONFIG | {
            "api": {"url": api_url},
            "cameras": [CONFIG["cameras"][0] | {"source": camera.url("cam-001")}],
        }
        config["cameras"][0].pop("start_time")
        live_config = OUT / "live.yaml"
        live_config.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        env = os.environ | {"STREETWATCH_API_KEY": key}
        worker = [*cli_cmd, "run", "--config", str(live_config), "--state-dir", str(OUT / "worker")]
        with process(worker, OUT / "worker.log", env):
            started = time.monotonic()
            seen = [0]

            def all_cases():
                page = _get(f"{api_url}/v1/cases", headers)
                count = len(page["items"]) if page else 0
                if count != seen[0]:
                    seen[0] = count
                    print(f"  after {time.monotonic() - started:.0f} s: {count} case(s) in the API")
                return page["items"] if count >= 3 else None

            print(
                "  waiting for the worker to confirm the parked van, the bus and the dumped box "
                "(dwell 20 s)"
            )
            cases = wait_until(all_cases, 150, "the worker's cases")
        changes = _get(f"{api_url}/v1/changes", headers)
        print(f"\n{len(cases)} case(s) in the intake API ({api_url}/v1/cases):")
        for c in sorted(cases, key=lambda c: c["first_seen"]):
            print(
                f"- {c['id']} [{c['status']}] {c['type']} ({c['event_code']}) on "
                f"{c['camera_id']}/{c['zone_id']}: {c['class_name']} {c['confidence']:.2f}, "
                f"reports {c['report_count']}\n    confirmed {c['confirmed_at']}"
            )
            for ev in c["evidence"]:
                print(f"    evidence {ev['kind']}: {ev.get('url') or ev.get('sha256')}")
        print(f"change feed: {len(changes['changes'])} change(s); logs in {OUT}/*.log")
    return 0


def _get(url: str, headers: dict[str, str]):
    try:
        response = httpx.get(url, headers=headers, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.is_success else None


def main() -> int:
    fetch_default()
    OUT.mkdir(parents=True, exist_ok=True)
    clip = OUT / "cam-001.mp4"
    if not clip.exists():
        build_clip(clip)
    config = OUT / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False, allow_unicode=True))
    cases = OUT / "cases.jsonl"
    code = cli(
        [
            "score",
            "--config",
            str(config),
            "--out",
            str(cases),
            "--evidence-dir",
            str(OUT / "evidence"),
        ]
    )
    if code != 0:
        return code
    show(cases)
    print(f"\nconfig: {config}\ncases:  {cases}")
    return live(clip)
