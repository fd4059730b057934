"""Execution providers: the config's choice, and the fall back on a machine without them."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from detector import providers
from detector.engine import Engine, available_cores
from streams.config import ConfigError, parse_config

CUDA, TRT, OV, CPU = (
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)


def test_accelerators_come_fastest_first_and_the_cpu_last() -> None:
    gpu_build = [TRT, CUDA, CPU, "AzureExecutionProvider"]
    assert providers.choose(["auto"], gpu_build) == ([TRT, CUDA, CPU], [])
    assert providers.choose(["cpu", "cuda"], gpu_build) == ([CUDA, CPU], [])  # CPU is last
    assert providers.choose(["cpu"], gpu_build) == ([CPU], [])
    assert providers.choose(["auto"], [CPU]) == ([CPU], [])  # auto takes what there is
    chosen, missing = providers.choose(["openvino", "cuda"], gpu_build)
    assert chosen == [CUDA, CPU]
    assert missing == ["openvino asked, onnxruntime has no OpenVINOExecutionProvider"]


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_cuda_asked_without_it_runs_on_the_cpu_says_why_once_and_finds_the_same(
    default_model: Path, bus_jpg: Path, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(providers, "_said", set())  # other tests' engines spoke already
    caplog.set_level(logging.INFO, logger="detector.providers")
    engine = Engine("default", providers=["cuda"])
    assert engine.providers == [CPU]
    assert engine.parallel_runs == available_cores()  # a CPU engine's default
    why = "inference: cuda asked, onnxruntime has no CUDAExecutionProvider: using " + CPU
    assert [r.getMessage() for r in caplog.records] == [why]
    assert caplog.records[0].levelno == logging.WARNING
    Engine("default", providers=["cuda"])
    assert len(caplog.records) == 1  # once per process, not per engine
    bus = cv2.imread(str(bus_jpg))
    (found,) = engine.detect([bus])
    (on_cpu,) = Engine("default", providers=["cpu"]).detect([bus])
    assert len(found) > 0
    np.testing.assert_array_equal(found.boxes, on_cpu.boxes)
    np.testing.assert_array_equal(found.class_ids, on_cpu.class_ids)


def test_an_unknown_provider_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"detector": {"providers": ["gpu"]}})
    assert "detector.providers[0]" in str(refused.value)
    with pytest.raises(ConfigError, match=r"detector\.providers"):
        parse_config({"detector": {"providers": []}})
    assert parse_config({}).detector.providers == ("auto",)
