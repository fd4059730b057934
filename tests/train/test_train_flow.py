"""The training loop end to end, on the CPU: reviewed cases in the real intake API -> dataset
export -> Ultralytics training from scratch -> ONNX -> registry -> int8 -> evaluation through
our engine -> `models list`, `models compare`, and `score` on a clip with the new model.

Runs in the `train` venv (`make test-train`; `make test` runs it after the main suite). A
model trained for seconds is not accurate: this proves the flow and checks what each step
wrote, not the model's quality.
"""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml

# Not imported here: `streetwatch train` sets Ultralytics up offline before it loads.
if importlib.util.find_spec("ultralytics") is None:
    pytest.skip("needs the train extra: make test-train", allow_module_level=True)

from api.server.settings import Settings
from models.cache import HOME_ENV, home
from streams.cli import main
from streams.training.errors import TrainingRequestError
from streams.training.flow import TrainProgress, TrainRequest, train_and_register
from tests.support.api import run_server
from tests.support.scenes import BUS_CROP, Sprite, crop, render, video_frames
from tests.training_data import Composer, make_reviewed_cases, read_labels

EPOCHS, IMGSZ = 3, 160


class Steps(TrainProgress):
    """What a training run tells its watcher, in order."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def training(self, request, data) -> None:
        self.heard.append(f"training {request.name}")

    def registered(self, manifest, seconds) -> None:
        self.heard.append(f"registered {manifest.name}")

    def evaluating(self, name) -> None:
        self.heard.append(f"evaluating {name}")


@pytest.fixture
def private_home(tmp_path, default_model, monkeypatch) -> Path:
    """A registry of its own (the shared cache stays untouched), holding the default model."""
    shared = home()
    mine = tmp_path / "home"
    (mine / "models").mkdir(parents=True)
    (mine / "models" / "yolov4-tiny").symlink_to(shared / "models" / "yolov4-tiny")
    (mine / "samples").symlink_to(shared / "samples")
    monkeypatch.setenv(HOME_ENV, str(mine))
    return mine


LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture
def no_network(monkeypatch) -> list[object]:
    """Nothing may leave the machine (Ultralytics' downloads, analytics, hub): every attempt
    to resolve or connect to anything but loopback is refused and recorded."""
    attempts: list[object] = []
    resolve, connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not str(host).startswith(LOOPBACK):
            attempts.append(host)
            raise socket.gaierror(f"no network in this test: {host}")
        return resolve(host, *args, **kwargs)

    def guarded_connect(self, address):
        if isinstance(address, tuple) and not str(address[0]).startswith(LOOPBACK):
            attempts.append(address)
            raise OSError(f"no network in this test: {address}")
        return connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


def _scenario(tmp_path: Path, vtest_avi: Path, bus_jpg: Path, model: str) -> Path:
    """A bus parks in a bay on real footage for 20 s: one parking incident to a good model."""
    sprite = Sprite(crop(bus_jpg, BUS_CROP, 220)).moving(0, 2, (-220, 300), (300, 300))
    clip = render(
        tmp_path / "bay.mp4", video_frames(vtest_avi), 24, 10, [sprite.parked(2, 24, (300, 300))]
    )
    config = {
        "model": model,
        "rules": {"illegal_parking": {"dwell_s": 8, "clear_s": 4}},
        "cameras": [
            {
                "id": "cam-bay",
                "source": str(clip),
                "start_time": "2026-05-03T08:00:00+08:00",
                "sample": {"fps": 2},
                "zones": [
                    {
                        "id": "bay",
                        "polygon": [[250, 250], [767, 250], [767, 575], [250, 575]],
                        "checks": ["illegal_parking", "garbage"],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_reviewed_cases_to_an_evaluated_int8_model(
    private_home, no_network, tmp_path, vtest_avi, bus_jpg, monkeypatch, capsys
):
    settings = Settings(data_dir=tmp_path / "data", db_url=f"sqlite:///{tmp_path / 'api.db'}")
    with run_server(settings) as server:
        import httpx

        clients = {
            s: httpx.Client(
                base_url=server.url,
                timeout=30,
                headers={"Authorization": f"Bearer {server.create_key(s, name=s)}"},
            )
            for s in ("ingest", "dispatch")
        }
        made = make_reviewed_cases(
            clients["ingest"], clients["dispatch"], Composer(vtest_avi, bus_jpg), per_scene=4
        )
        monkeypatch.setenv("SW_TRAIN_KEY", server.create_key("dispatch", name="trainer"))
        data = tmp_path / "dataset"
        assert (
            main(
                [
                    "dataset",
                    "export",
                    "--api",
                    server.url,
                    "--key-env",
                    "SW_TRAIN_KEY",
                    "--out",
                    str(data),
                ]
            )
            == 0
        )
    dataset = json.loads((data / "manifest.json").read_text())
    names = dataset["names"]
    # The export: one label file per image, each positive's boxes exactly as composed.
    positives = [m for m in made if m.role == "positive"]
    assert sum(sum(v.values()) for v in dataset["boxes_per_class"].values()) == 2 * len(positives)
    for entry in dataset["images"]:
        label = (data / entry["file"].replace("images/", "labels/", 1)).with_suffix(".txt")
        (case,) = [m for m in made if m.id == entry["cases"][0]]
        boxes = read_labels(label.read_text(), entry["width"], entry["height"])
        assert [names[c] for c, _ in boxes] == ([case.label] if case.role == "positive" else [])
        if boxes:
            np.testing.assert_allclose(boxes[0][1], case.truth, atol=0.01)
    scenes = {(e["camera_id"], e["day"]): e["split"] for e in dataset["images"]}
    assert all(e["split"] == scenes[(e["camera_id"], e["day"])] for e in dataset["images"])

    scenario = _scenario(tmp_path, vtest_avi, bus_jpg, "city-test")
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--name",
            "city-test",
            "--base",
            "yolov8n.yaml",
            "--imgsz",
            str(IMGSZ),
            "--epochs",
            str(EPOCHS),
            "--batch",
            "8",
            "--scenario",
            str(scenario),
            "--force",
            "--workdir",
            str(tmp_path / "run"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "registered city-test" in printed and "city-test-int8" in printed

    from models import registry

    fp32, path = registry.get("city-test")
    int8, _ = registry.get("city-test-int8")
    assert fp32.class_names == names and fp32.dynamic_hw and fp32.input_size == (IMGSZ, IMGSZ)
    assert fp32.incident_classes["garbage"] == ["garbage"]
    assert fp32.incident_classes["illegal_parking"] == ["car", "bus", "truck", "motorbike"]
    assert fp32.stall_attendant_classes == []
    t = fp32.training
    assert (t.dataset_sha256, t.base, t.epochs, t.imgsz) == (
        dataset["data_sha256"],
        "yolov8n.yaml",
        EPOCHS,
        IMGSZ,
    )
    assert t.images == dataset["images_per_split"] and t.dataset == dataset["source"]
    assert int8.quantization.quantized_from == "city-test" and 0 <= int8.quantization.agreement <= 1
    assert int8.training == fp32.training
    val_classes = {n for n, k in dataset["boxes_per_class"]["val"].items() if k}
    for m in (fp32, int8):
        e = m.evaluation
        assert e is not None and e.dataset_sha256 == dataset["data_sha256"]
        assert e.images == dataset["images_per_split"]["val"]
        assert set(e.per_class) == val_classes
        for value in (e.map50, e.map50_95, e.precision, e.recall):
            assert 0 <= value <= 1
        for c in e.per_class.values():
            assert all(0 <= v <= 1 for v in (c.ap50, c.ap50_95, c.precision, c.recall))
            assert c.ap50_95 <= c.ap50
        assert set(e.cases) == {"illegal_parking", "street_stall", "garbage"}
        assert all(isinstance(v, int) and v >= 0 for v in e.cases.values())

    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    row = next(line for line in listed.splitlines() if line.startswith("city-test "))
    assert dataset["data_sha256"][:12] in row and f"{fp32.evaluation.map50:.3f}" in row

    assert (
        main(
            [
                "models",
                "compare",
                "default",
                "city-test",
                "--data",
                str(data),
                "--scenario",
                str(scenario),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "default" in table and "city-test" in table and "cases illegal_parking" in table
    # The COCO model sees the pasted buses; it has no garbage class at all.
    bus_row = next(line for line in table.splitlines() if line.startswith("bus ap50"))
    assert float(bus_row.split()[2]) > 0.5
    garbage_row = next(line for line in table.splitlines() if line.startswith("garbage ap50"))
    assert float(garbage_row.split()[2]) == 0.0

    # The new model scores a clip like any other model.
    out = tmp_path / "cases.jsonl"
    assert (
        main(
            [
                "score",
                "--config",
                str(scenario),
                "--out",
                str(out),
                "--evidence-dir",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == sum(fp32.evaluation.cases.values())  # the same scenario, counted
    assert path.is_file()

    # Fine-tuning from a .pt the user supplies (here: the run above's best weights), through
    # the function the command is a layer over.
    best = tmp_path / "run" / "run" / "weights" / "best.pt"
    request = TrainRequest(
        data, "city-test-ft", base=str(best), imgsz=IMGSZ, epochs=1, batch=8, int8=False
    )
    steps = Steps()
    result = train_and_register(request, steps)
    assert result.complete and [n for n, _ in result.evaluations] == ["city-test-ft"]
    assert steps.heard == [
        "training city-test-ft",
        "registered city-test-ft",
        "evaluating city-test-ft",
    ]
    tuned, _ = registry.get("city-test-ft")
    assert tuned.training.base == str(best) and tuned.training.epochs == 1
    assert tuned.evaluation == result.evaluations[0][1] and tuned.class_names == names
    with pytest.raises(TrainingRequestError, match="already exists"):
        train_and_register(request, steps)  # refused before training: nothing more heard
    assert len(steps.heard) == 3
    assert no_network == []  # nothing tried to reach beyond loopback
