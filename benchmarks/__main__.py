"""`python -m benchmarks [--only SECTION ...]`: run benchmarks, update benchmarks/RESULTS.md.

Each section replaces its own block in RESULTS.md, so one can be re-run alone.
"""

from __future__ import annotations

import argparse
import logging
import time

from benchmarks import api, capacity, e2e, inference, soak, stages
from benchmarks.common import SUBSTREAM_SIZE, build_clip, machine, write_section

SECTIONS = ("e2e", "stages", "inference", "capacity", "substream", "api", "soak")
# The soak is an hour of wall time for one memory figure, so it runs only when asked for: a
# shorter run cannot tell a leak from the one-frame steps of candidate sites opening.
DEFAULT_SECTIONS = tuple(name for name in SECTIONS if name != "soak")
OWN_HOW = ("api", "capacity", "substream", "soak")  # sections that say their own machine and input


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="repeatable; default: all but soak"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--seconds", type=float, default=12, help="length of the street clips")
    parser.add_argument(
        "--window", type=float, default=60, help="capacity, substream: seconds measured"
    )
    parser.add_argument(
        "--warmup", type=float, default=10, help="capacity, substream: seconds before"
    )
    parser.add_argument("--minutes", type=float, default=60, help="soak: length of the run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    chosen = args.only or DEFAULT_SECTIONS
    if set(chosen) - {"api"}:
        inference.ensure_int8()  # every section but api runs the int8 model
    clip = build_clip(args.seconds)
    how = (
        f"Machine: {machine()}. Input: {clip.name}, opencv-doc vtest.avi (real street "
        f"footage) upscaled to 1920x1080, H.264, 25 fps, a keyframe every 2 s, built by "
        f"the benchmark. Median of {args.runs} runs."
    )
    for name in chosen:
        started = time.perf_counter()
        if name == "e2e":
            body = e2e.run(clip, args.runs)
        elif name == "stages":
            models = e2e.exported_models()
            body = stages.run(
                clip, args.runs, {"YOLOv4-tiny": "default", "YOLOv8n": str(models["fixed"])}
            )
        elif name == "inference":
            body = inference.run(clip, args.runs, e2e.exported_models())
        elif name == "api":
            body = api.run(args.runs)  # says its own machine and input; no clip
        elif name == "capacity":
            body = capacity.run(clip, args.warmup, args.window)
        elif name == "substream":
            sub_clip = build_clip(args.seconds, SUBSTREAM_SIZE)
            body = capacity.run(sub_clip, args.warmup, args.window, main_clip=clip)
        else:
            body = soak.run(clip, args.minutes)
        command = (
            f"`python -m benchmarks --only {name} --runs {args.runs} --seconds {args.seconds:g}`"
        )
        if name == "api":
            command = f"`python -m benchmarks --only api --runs {args.runs}`"
        elif name in ("capacity", "substream"):
            command = (
                f"`python -m benchmarks --only {name} --seconds {args.seconds:g} "
                f"--warmup {args.warmup:g} --window {args.window:g}`"
            )
        elif name == "soak":
            command = (
                f"`python -m benchmarks --only soak --seconds {args.seconds:g} "
                f"--minutes {args.minutes:g}`"
            )
        took = time.perf_counter() - started
        text = body if name in OWN_HOW else f"{body}\n\n{how}"
        write_section(name, f"{text} Reproduce: {command} ({took:.0f} s).")
        print(f"{name}: done in {took:.0f} s")


if __name__ == "__main__":
    main()
