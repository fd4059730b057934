"""Section 7: batch scoring on Ray against the single process, on this machine.

`streetwatch score DIR` over a directory of street clips: in one process (one engine on
every core), then `--ray --workers N` for each N up to the core count (a local runtime
started by the command, its start counted). Each run is a fresh process with a fresh work
dir (nothing skipped); the runs take turns within a round so load from other processes hits
them alike, and each ratio is taken within its round. Files and sampled frames per second
of the command's own wall time (`scored ...` line: from before the runtime starts to the
merged output written).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import ROOT, SUBSTREAM_SIZE, build_clip, machine, table
from detector.engine import available_cores

SCORED = re.compile(r"scored (\d+)/(\d+) files: (\d+) frames, .*? in ([\d.]+) s")
FILES = 8
SAMPLE_FPS = 5


def config(path: Path) -> Path:
    zone = {"id": "street", "polygon": [[0, 0], [640, 0], [640, 360], [0, 360]]}
    zone["checks"] = ["illegal_parking", "street_stall", "garbage"]
    path.write_text(
        yaml.safe_dump(
            {
                "model": "default",
                "cameras": [
                    {
                        "id": "bench",
                        "source": "x.mp4",
                        "sample": {"fps": SAMPLE_FPS},
                        "zones": [zone],
                    }
                ],
            }
        )
    )
    return path


def score(recordings: Path, cfg: Path, out: Path, extra: list[str]) -> tuple[int, int, float]:
    """(files, frames, seconds) of one `streetwatch score` run."""
    cmd = [sys.executable, "-m", "streams.cli", "score", str(recordings), "--config", str(cfg)]
    cmd += ["--out", str(out / "cases.jsonl"), "--evidence-dir", str(out / "evidence")]
    cmd += ["--name-pattern", r"(?P<camera>[a-z]+)_\d+", *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    found = SCORED.search(result.stdout)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return int(found[1]), int(found[3]), float(found[4])


def run(seconds: float, runs: int) -> str:
    clip = build_clip(seconds, SUBSTREAM_SIZE)
    cores = available_cores()
    modes = [("single process", [])] + [
        (f"Ray, {n} worker{'s' * (n > 1)}", ["--ray", "--workers", str(n)])
        for n in range(1, cores + 1)
    ]
    with tempfile.TemporaryDirectory(prefix="sw-batch-") as tmp:
        base = Path(tmp)
        recordings = base / "recordings"
        recordings.mkdir()
        for n in range(FILES):
            shutil.copy(clip, recordings / f"bench_{n:02d}.mp4")
        cfg = config(base / "config.yaml")
        rates: dict[str, list[tuple[float, float]]] = {m: [] for m, _ in modes}
        ratios: dict[str, list[float]] = {m: [] for m, _ in modes}
        frames_seen = 0
        for r in range(runs):
            single = 0.0
            for name, extra in modes:
                out = base / f"run-{r}-{len(rates[name])}-{name.replace(' ', '')}"
                files, frames, took = score(recordings, cfg, out, extra)
                frames_seen = frames
                rates[name].append((files / took, frames / took))
                if not extra:
                    single = frames / took
                ratios[name].append((frames / took) / single)
    rows = [
        [
            name,
            f"{statistics.median(f for f, _ in rates[name]):.2f}",
            f"**{statistics.median(fr for _, fr in rates[name]):.1f}**",
            " / ".join(f"{fr:.1f}" for _, fr in rates[name]),
            f"{statistics.median(ratios[name]):.2f}x",
        ]
        for name, _ in modes
    ]
    body = table(["mode", "files/s", "frames/s (median)", "runs", "vs single process"], rows)
    return (
        f"{body}\n\n{FILES} files of {seconds:g} s each ({clip.name}: vtest.avi at 640x360, "
        f"H.264, 25 fps), sampled at {SAMPLE_FPS} fps: {frames_seen} frames per run; the "
        f"default model, every type checked over the whole picture (the static stage on). "
        f"One engine per Ray worker on one core; the single process runs one engine on all "
        f"{cores}. Machine: {machine()}; other engineers' jobs share its cores. Median of "
        f"{runs} rounds."
    )
