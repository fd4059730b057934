"""`make demo`: the main job on embedded defaults, on real street footage.

Builds a clip from real material that a fresh machine can get from the package registries
(vtest.avi, real street footage from Debian's opencv-doc, with a van parked at the top right;
the bus from the model wheel's bus.jpg driving in, parking for 45 s and leaving), scores it
with the default model and prints the cases and where their evidence is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from models.default import fetch_default
from models.samples import sample_path
from streams.cli import main as cli
from streams.scenes import BUS_CROP, VTEST_AVI, Sprite, crop, render, video_frames

OUT = Path("out/demo")
CLIP_SECONDS = 75
PARK_AT = (420, 300)

CONFIG = {
    "model": "default",
    "rules": {
        # Shorter than production defaults so the demo fits in a minute of video.
        "illegal_parking": {"dwell_s": 20, "clear_s": 10, "occlusion_s": 10},
        "street_stall": {"dwell_s": 30, "clear_s": 10},
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
                    "checks": ["street_stall"],
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
    print(f"building a {CLIP_SECONDS} s street clip -> {path}")
    return render(path, video_frames(VTEST_AVI), CLIP_SECONDS, 10, [bus])


def show(cases_path: Path) -> None:
    cases = [json.loads(line) for line in cases_path.read_text().splitlines()]
    print(f"\n{len(cases)} case(s):")
    for c in cases:
        print(
            f"- {c['type']} ({c['event_code']}) on {c['camera_id']}/{c['zone_id']}: "
            f"{c['class_name']} {c['confidence']:.2f}\n"
            f"    first seen {c['first_seen']}, confirmed {c['confirmed_at']}, "
            f"cleared {c['cleared_at'] or '(still there at the end)'}"
        )
        for ev in c["evidence"]:
            print(f"    evidence {ev['kind']}: {ev['path']}")


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
    if code == 0:
        show(cases)
        print(f"\nconfig: {config}\ncases:  {cases}")
    return code


if __name__ == "__main__":
    sys.exit(main())
