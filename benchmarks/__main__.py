"""`python -m benchmarks [--only SECTION ...]`: run benchmarks, update benchmarks/RESULTS.md.

Each section replaces its own block in RESULTS.md, so one can be re-run alone.
"""

from __future__ import annotations

import argparse
import logging
import time

from benchmarks import (
    api,
    batch,
    capacity,
    e2e,
    failover,
    inference,
    live,
    plates,
    receive,
    robustness,
    scenarios,
    shadow,
    soak,
    stages,
)
from benchmarks.common import SUBSTREAM_SIZE, build_clip, machine, write_section

SECTIONS = (
    "e2e",
    "stages",
    "inference",
    "capacity",
    "substream",
    "scaling",
    "receive",
    "revisions",
    "processes",
    "receivers",
    "sampling",
    "lone",
    "api",
    "api-lock",
    "soak",
    "batch",
    "failover",
    "scenarios",
    "shadow",
    "plates",
    "robustness",
)
# The soak is an hour of wall time for one memory figure, so it runs only when asked for: a
# shorter run cannot tell a leak from the one-frame steps of candidate sites opening; the
# scaling section is three capacity searches, and revisions and processes compare settings a
# change calls for, so they too.
ON_REQUEST = ("soak", "scaling", "revisions", "processes", "receivers")
DEFAULT_SECTIONS = tuple(name for name in SECTIONS if name not in ON_REQUEST)
PROCESS_COUNTS = (2, 4)  # processes: one per core on this 2-core host, and two per core
OWN_HOW = (
    "api",
    "api-lock",
    "capacity",
    "substream",
    "scaling",
    "receive",
    "revisions",
    "processes",
    "receivers",
    "sampling",
    "lone",
    "soak",
    "batch",
    "failover",
    "scenarios",
    "shadow",
    "robustness",
)  # sections that say their own machine and input


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
    parser.add_argument(
        "--cameras",
        type=int,
        help="capacity, substream: skip the search; measure the static stage's cost at N cameras",
    )
    parser.add_argument("--substreams", type=int, default=192, help="receivers: sub-stream cameras")
    parser.add_argument(
        "--receive",
        type=lambda text: text.split(","),
        default=["pyav", "ffmpeg", "chunked"],
        help="receivers: the worker.receive paths compared, comma-separated",
    )
    parser.add_argument(
        "--steps",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=capacity.STEPS,
        help="capacity, substream, scaling: camera counts to step through, e.g. 128,192,256",
    )
    parser.add_argument(
        "--without-pinned",
        action="store_true",
        help="scaling: leave out the one-core layout (continue the every-core searches)",
    )
    parser.add_argument(
        "--adaptive",
        action="store_true",
        help="capacity, substream: search with adaptive sampling on a quiet street instead",
    )
    parser.add_argument(
        "--against",
        default="HEAD~1",
        help="revisions: the git revision whose worker is set beside this tree's",
    )
    parser.add_argument("--minutes", type=float, default=60, help="soak: length of the run")
    parser.add_argument("--kills", type=int, default=5, help="failover: workers killed")
    parser.add_argument(
        "--fleet-cameras", type=int, default=6, help="failover: loopback cameras in the fleet"
    )
    parser.add_argument(
        "--baseline",
        default=robustness.BASELINE,
        help="robustness: the git revision whose static-object stage is set beside the current",
    )
    parser.add_argument(
        "--scene", action="append", help="robustness: run only this scene (repeatable)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="robustness: scenes scored at once, one process each"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    chosen = args.only or DEFAULT_SECTIONS
    if set(chosen) - {"api", "api-lock", "batch", "failover", "shadow", "plates", "robustness"}:
        inference.ensure_int8()  # every section but api runs the int8 model
    clip = build_clip(args.seconds)
    how = (
        f"Machine: {machine()}. Input: {clip.name}, opencv-doc vtest.avi (real street "
        f"footage) upscaled to 1920x1080, H.264, 25 fps, a keyframe every 2 s, built by "
        f"the benchmark. Median of {args.runs} runs."
    )
    for name in chosen:
        started = time.perf_counter()
        blocks: dict[str, str]  # the RESULTS.md blocks this section writes, by marker name
        if name == "e2e":
            blocks = {name: e2e.run(clip, args.runs)}
        elif name == "stages":
            models = e2e.exported_models()
            body = stages.run(
                clip,
                args.runs,
                [
                    stages.Model("YOLOv4-tiny", "default"),  # the default model comes first
                    stages.Model("YOLOv4-tiny int8, rect", inference.INT8, rect=True),
                    stages.Model("YOLOv8n", str(models["fixed"])),
                ],
            )
            blocks = {name: body}
        elif name == "inference":
            blocks = {name: inference.run(clip, args.runs, e2e.exported_models())}
        elif name == "api":
            blocks = {name: api.run(args.runs)}  # says its own machine and input; no clip
        elif name == "api-lock":
            blocks = {name: api.run_lock()}  # one run per cell
        elif name in ("capacity", "substream"):
            sub = name == "substream"
            bodies = capacity.run(
                build_clip(args.seconds, SUBSTREAM_SIZE) if sub else clip,
                args.warmup,
                args.window,
                steps=args.steps,
                main_clip=clip if sub else None,
                cameras=args.cameras,
                runs=args.runs,
                mode=capacity.QUIET if args.adaptive else capacity.FIXED,
            )
            # The search and the static stage's cost are blocks of their own, so a run at a
            # given count (--cameras) leaves the last search's table as it was.
            search = f"{name}-adaptive" if args.adaptive else name
            blocks = {
                search if part == "search" else f"{name}-static": b for part, b in bodies.items()
            }
        elif name == "scaling":
            body = capacity.scaling(
                clip, args.warmup, args.window, args.steps, pinned=not args.without_pinned
            )
            blocks = {name: f"{body}\n\n{live.describe(clip)}"}
        elif name == "receive":
            clips = {"1080p": clip, "640x360": build_clip(args.seconds, SUBSTREAM_SIZE)}
            blocks = {name: receive.run(clips, args.window)}
        elif name == "revisions":
            clips = {"1080p": clip, "640x360": build_clip(args.seconds, SUBSTREAM_SIZE)}
            with live.intake() as api_server:
                body = capacity.revisions(
                    clips, args.cameras or 64, api_server, args.against, args.runs,
                    args.warmup, args.window,
                )  # fmt: skip
            blocks = {f"{name}-{args.cameras or 64}": f"{body}\n\n{live.describe(clip)}"}
        elif name == "processes":
            clips = {
                "1080p": (clip, args.cameras or 128),
                "640x360": (build_clip(args.seconds, SUBSTREAM_SIZE), args.substreams),
            }
            with live.intake() as api_server:
                settings = {f"{n} processes": {"worker": {"processes": n}} for n in PROCESS_COUNTS}
                body = capacity.settings_at(
                    clips, api_server, settings, args.runs, args.warmup, args.window
                )
            counts = (args.cameras or 128, args.substreams)
            block = name if counts == (128, 192) else f"{name}-{counts[0]}-{counts[1]}"
            blocks = {block: f"{body}\n\n{live.describe(clip)}"}
        elif name == "receivers":
            clips = {
                "1080p": (clip, args.cameras or 128),
                "640x360": (build_clip(args.seconds, SUBSTREAM_SIZE), args.substreams),
            }
            settings = {f"receive: {how}": {"worker": {"receive": how}} for how in args.receive}
            with live.intake() as api_server:
                body = capacity.settings_at(
                    clips, api_server, settings, args.runs, args.warmup, args.window
                )
            blocks = {f"{name}-{args.cameras or 128}": f"{body}\n\n{live.describe(clip)}"}
        elif name == "batch":
            blocks = {name: batch.run(args.seconds, args.runs)}
        elif name == "failover":
            blocks = {name: failover.run(args.fleet_cameras, args.kills)}
        elif name == "scenarios":
            blocks = {name: scenarios.run()}
        elif name == "shadow":
            blocks = {name: shadow.run(clip, args.runs)}
        elif name == "plates":
            blocks = {name: plates.run(clip, args.runs)}
        elif name == "robustness":
            blocks = {name: robustness.run(args.baseline, args.scene, args.jobs)}
        elif name == "sampling":
            clips = {"1080p": clip, "640x360": build_clip(args.seconds, SUBSTREAM_SIZE)}
            with live.intake() as api_server:
                body = capacity.sampling_costs(
                    clips, args.cameras or 12, api_server, args.warmup, args.window
                )
            blocks = {name: f"{body}\n\n{live.describe(clip)}"}
        elif name == "lone":
            with live.intake() as api_server:
                body = capacity.lone_camera(clip, api_server, args.warmup, args.window)
            blocks = {name: f"{body}\n\n{live.describe(clip)}"}
        else:
            blocks = {name: soak.run(clip, args.minutes)}
        command = (
            f"`python -m benchmarks --only {name} --runs {args.runs} --seconds {args.seconds:g}`"
        )
        if name == "api":
            command = f"`python -m benchmarks --only api --runs {args.runs}`"
        elif name == "scenarios":
            command = "`python -m benchmarks --only scenarios`"
        elif name == "robustness":
            scenes = "".join(f" --scene {s}" for s in args.scene or ())
            command = (
                f"`python -m benchmarks --only robustness --baseline {args.baseline}"
                f"{scenes} --jobs {args.jobs}`"
            )
        elif name == "receive":
            command = (
                f"`python -m benchmarks --only receive --seconds {args.seconds:g} "
                f"--window {args.window:g}`"
            )
        elif name == "revisions":
            command = (
                f"`python -m benchmarks --only revisions --against {args.against} --runs "
                f"{args.runs} --cameras {args.cameras or 64} --seconds {args.seconds:g} "
                f"--warmup {args.warmup:g} --window {args.window:g}`"
            )
        elif name == "receivers":
            command = (
                f"`python -m benchmarks --only receivers --runs {args.runs} --cameras "
                f"{args.cameras or 128} --substreams {args.substreams} --receive "
                f"{','.join(args.receive)} --seconds "
                f"{args.seconds:g} --warmup {args.warmup:g} --window {args.window:g}`"
            )
        elif name in ("capacity", "substream", "scaling", "sampling", "lone", "processes"):
            cameras = f" --cameras {args.cameras}" if args.cameras else ""
            cameras += " --adaptive" if args.adaptive and name != "sampling" else ""
            if args.steps != capacity.STEPS:
                cameras += f" --steps {','.join(map(str, args.steps))}"
            cameras += " --without-pinned" if args.without_pinned else ""
            if name == "processes" and args.substreams != 192:
                cameras += f" --substreams {args.substreams}"
            command = (
                f"`python -m benchmarks --only {name} --runs {args.runs} --seconds "
                f"{args.seconds:g} --warmup {args.warmup:g} --window {args.window:g}{cameras}`"
            )
        elif name == "failover":
            command = (
                f"`python -m benchmarks --only failover --kills {args.kills} "
                f"--fleet-cameras {args.fleet_cameras}`"
            )
        elif name == "soak":
            command = (
                f"`python -m benchmarks --only soak --seconds {args.seconds:g} "
                f"--minutes {args.minutes:g}`"
            )
        took = time.perf_counter() - started
        for block, body in blocks.items():
            text = body if name in OWN_HOW else f"{body}\n\n{how}"
            write_section(block, f"{text} Reproduce: {command} ({took:.0f} s).")
        print(f"{name}: done in {took:.0f} s")


if __name__ == "__main__":
    main()
