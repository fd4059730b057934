"""Which ONNX Runtime execution providers an engine asks for, from the config's choice.

`detector.providers` in the config lists them by short name, in the order wanted; `auto`
stands for every accelerator this onnxruntime build has, fastest first (TensorRT, CUDA,
OpenVINO). The CPU always comes last, so a node an accelerator cannot run, or a machine
without one, still runs. What the engine uses, and why it did not get what was asked (no
such provider in this onnxruntime build, or one that failed to load: a missing CUDA
library), is logged once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

log = logging.getLogger(__name__)

Provider = Literal["auto", "cpu", "cuda", "tensorrt", "openvino"]

ORT_NAMES: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO = ("tensorrt", "cuda", "openvino")  # fastest first
CPU = ORT_NAMES["cpu"]

_said: set[str] = set()


def say_once(level: int, message: str) -> None:
    """Logs `message` the first time only: every engine of a process would repeat it."""
    if message not in _said:
        _said.add(message)
        log.log(level, message)


def choose(asked: Sequence[Provider], available: Sequence[str]) -> tuple[list[str], list[str]]:
    """The ORT providers to ask for, in order, CPU last; and why any provider asked by
    name is left out (`auto` takes what there is: none is no fault)."""
    chosen: list[str] = []
    missing: list[str] = []
    for name in asked:
        if name == "auto":
            wanted = [ORT_NAMES[n] for n in AUTO if ORT_NAMES[n] in available]
        elif ORT_NAMES[name] in available:
            wanted = [ORT_NAMES[name]]
        else:
            wanted = []
            missing.append(f"{name} asked, onnxruntime has no {ORT_NAMES[name]}")
        chosen += [n for n in wanted if n not in chosen]
    return [n for n in chosen if n != CPU] + [CPU], missing


def report(
    asked: Sequence[Provider], chosen: list[str], missing: list[str], got: list[str]
) -> None:
    """Says once what a session runs on and, where that is not what was asked, why."""
    failed = [f"{n} did not load (see onnxruntime's log)" for n in chosen if n not in got]
    using = ", ".join(got)
    if missing or failed:
        say_once(logging.WARNING, f"inference: {'; '.join(missing + failed)}: using {using}")
    elif "auto" in asked and got == [CPU]:
        say_once(logging.INFO, f"inference on {using} (auto: this onnxruntime has no accelerator)")
    else:
        say_once(logging.INFO, f"inference on {using} ({', '.join(asked)} asked)")
