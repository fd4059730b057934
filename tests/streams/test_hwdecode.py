"""Hardware decoding (`worker.decode`): tried once at start, with real FFmpeg; on a machine
without the device the cameras decode on the CPU, as by default, and the worker says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import ConfigError, parse_config
from streams.sources.hwdecode import AUTO, hardware_decoding

NO_GPU = not any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/dri"))


def test_the_cpu_is_the_default_and_asks_nothing() -> None:
    assert parse_config({}).worker.decode == "cpu"
    assert hardware_decoding("cpu") == (None, "decoding on the CPU")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU device")
def test_hardware_asked_where_there_is_none_falls_back_to_the_cpu_and_says_why() -> None:
    accel, why = hardware_decoding("cuda")
    assert accel is None
    assert why.startswith("cuda decoding asked, ") and why.endswith(": decoding on the CPU")
    accel, why = hardware_decoding("auto")
    assert accel is None
    assert all(kind in why for kind in AUTO)  # each one tried, each with its reason


def test_an_unknown_decoder_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match=r"worker\.decode"):
        parse_config({"worker": {"decode": "nvdec"}})
