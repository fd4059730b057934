"""`streetwatch dataset export/import`: reviewed cases from the real API (and real `score`
output) to a YOLO dataset, checked file by file against how the frames were composed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from streams.cli import main
from streams.training.dataset import DatasetProgress, ExportRequest, export_dataset
from streams.training.errors import TrainingFailed, TrainingRequestError
from tests.api.helpers import Api
from tests.training_data import Composer, make_reviewed_cases, read_labels


@pytest.fixture
def reviewed(sqlite_api: Api, vtest_avi, bus_jpg):
    return make_reviewed_cases(sqlite_api.ingest, sqlite_api.dispatch, Composer(vtest_avi, bus_jpg))


def _export(api: Api, out: Path, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setenv("SW_TEST_KEY", api.server.create_key("dispatch", name="trainer"))
    code = main(
        ["dataset", "export", "--api", api.url, "--key-env", "SW_TEST_KEY", "--out", str(out)]
    )
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def test_export_from_the_api(
    sqlite_api: Api, reviewed, default_model, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "ds"
    code, printed = _export(sqlite_api, out, monkeypatch, capsys)
    assert code == 0, printed
    manifest = json.loads((out / "manifest.json").read_text())
    spec = yaml.safe_load((out / "dataset.yaml").read_text())
    names = manifest["names"]
    assert names == ["car", "bus", "truck", "motorbike", "street_stall", "garbage"]
    assert spec == {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(names)),
    }
    assert manifest["incident_classes"]["garbage"] == ["garbage"]
    assert manifest["incident_classes"]["illegal_parking"] == ["car", "bus", "truck", "motorbike"]

    # Which cases went in, and how: permitted rejections are real things, left out.
    by_case = {c["id"]: c for c in manifest["cases"]}
    expected = {m.id: m for m in reviewed if m.role != "permitted"}
    assert set(by_case) == set(expected)
    assert {m.id for m in reviewed if m.role == "permitted"} == {
        s.split()[1].rstrip(":") for s in manifest["skipped"]
    }
    for cid, made in expected.items():
        assert (by_case[cid]["role"], by_case[cid]["label"], by_case[cid]["images"]) == (
            made.role,
            made.label,
            2,
        )
        # The parked buses' plates come with their cases; nothing else has one.
        assert (by_case[cid]["plate"] is not None) == (made.label == "bus")

    # Every image: the posted bytes unaltered, its label file the composed boxes exactly.
    images = {e["sha256"]: e for e in manifest["images"]}
    assert len(images) == len(manifest["images"]) == 2 * len(expected)
    for made in expected.values():
        for shot in made.shots:
            entry = images[hashlib.sha256(shot.image).hexdigest()]
            path = out / entry["file"]
            assert path.read_bytes() == shot.image
            assert entry["cases"] == [made.id] and entry["camera_id"] == made.camera
            label = out / entry["file"].replace("images/", "labels/", 1)
            label = label.with_suffix(".txt")
            boxes = read_labels(label.read_text(), entry["width"], entry["height"])
            if made.role == "negative":
                assert boxes == []  # a hard negative: the image, nothing labelled on it
                continue
            ((cls, xyxy),) = boxes
            assert names[cls] == made.label
            np.testing.assert_allclose(
                xyxy, made.truth, atol=0.01
            )  # the reviewer's box if corrected

    # The split is by camera and day: each scene wholly on one side, both sides used.
    scenes: dict[tuple[str, str], set[str]] = {}
    for e in manifest["images"]:
        scenes.setdefault((e["camera_id"], e["day"]), set()).add(e["split"])
        assert e["file"].startswith(f"images/{e['split']}/")
    assert len(scenes) == 4 and all(len(s) == 1 for s in scenes.values())
    assert {s for v in scenes.values() for s in v} == {"train", "val"}
    assert sorted(len(list((out / "images" / s).iterdir())) for s in ("train", "val")) == sorted(
        manifest["images_per_split"].values()
    )
    # Counts per class and split, from the label files themselves.
    for split in ("train", "val"):
        counts = dict.fromkeys(names, 0)
        for f in (out / "labels" / split).iterdir():
            for line in f.read_text().splitlines():
                counts[names[int(line.split()[0])]] += 1
        assert manifest["boxes_per_class"][split] == counts
        negatives = sum(1 for f in (out / "labels" / split).iterdir() if not f.read_text())
        assert manifest["negatives_per_split"][split] == negatives
    assert sum(manifest["boxes_per_class"]["train"].values()) + sum(
        manifest["boxes_per_class"]["val"].values()
    ) == 2 * sum(m.role == "positive" for m in expected.values())

    # A contact sheet per class seen, and one of the hard negatives.
    sheets = {p.stem: cv2.imread(str(p)) for p in (out / "contact").iterdir()}
    assert set(sheets) == {"bus", "garbage", "_negatives"}
    assert all(s is not None and s.shape[1] == 8 * 100 + 4 for s in sheets.values())
    assert "hard negatives" in printed and "skipped" in printed

    # The COCO model through the engine on the val split: it finds the pasted buses, and
    # has no garbage class at all.
    capsys.readouterr()
    assert main(["models", "compare", "default", "yolov4-tiny", "--data", str(out)]) == 0
    table = capsys.readouterr().out
    val_bus = manifest["boxes_per_class"]["val"]["bus"]
    bus = next(line.split() for line in table.splitlines() if line.startswith("bus ap50"))
    assert float(bus[2]) == float(bus[3]) > 0.5 and val_bus > 0
    garbage = next(line.split() for line in table.splitlines() if line.startswith("garbage ap50"))
    assert float(garbage[2]) == 0.0

    # Exporting over it is refused and changes nothing; an imported copy keeps the split.
    before = (out / "manifest.json").read_bytes()
    code, printed = _export(sqlite_api, out, monkeypatch, capsys)
    assert code == 1 and "not empty" in printed
    assert (out / "manifest.json").read_bytes() == before
    assert main(["dataset", "import", str(out), "--out", str(tmp_path / "copy")]) == 0
    copy = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert copy["names"] == names
    assert copy["boxes_per_class"] == manifest["boxes_per_class"]
    assert {(e["sha256"], e["split"]) for e in copy["images"]} == {
        (e["sha256"], e["split"]) for e in manifest["images"]
    }


class Heard(DatasetProgress):
    def __init__(self) -> None:
        self.begun: list[tuple[str, Path, list[str]]] = []

    def begin(self, source: str, out: Path, classes) -> None:
        self.begun.append((source, out, list(classes)))


def test_export_dataset_called_as_a_function(sqlite_api: Api, reviewed, default_model, tmp_path):
    """`streams.training.dataset.export_dataset`, as the command calls it, over real HTTP:
    the manifest it returns is the one written; a key without the dispatch scope fails the
    export and leaves nothing; what is asked wrong is refused before any request."""
    out = tmp_path / "ds"
    dispatch = sqlite_api.server.create_key("dispatch", name="trainer")
    heard = Heard()
    manifest = export_dataset(ExportRequest(out, api=sqlite_api.url, key=dispatch), heard)

    assert heard.begun == [(f"api:{sqlite_api.url}", out, manifest.names)]
    assert json.loads((out / "manifest.json").read_text()) == json.loads(manifest.model_dump_json())
    kept = {m.id for m in reviewed if m.role != "permitted"}
    assert {c.id for c in manifest.cases} == kept
    assert len(manifest.images) == 2 * len(kept) == len(list((out / "images").rglob("*.jpg")))

    ingest = sqlite_api.server.create_key("ingest", name="camera")
    with pytest.raises(TrainingFailed):
        export_dataset(ExportRequest(tmp_path / "refused", api=sqlite_api.url, key=ingest))
    assert not (tmp_path / "refused").exists()
    with pytest.raises(TrainingFailed, match="not empty"):
        export_dataset(ExportRequest(out, api=sqlite_api.url, key=dispatch))

    with pytest.raises(TrainingRequestError, match="exactly one"):
        ExportRequest(tmp_path / "x")
    with pytest.raises(TrainingRequestError, match="--val-fraction"):
        ExportRequest(tmp_path / "x", api=sqlite_api.url, key=dispatch, val_fraction=0)
    with pytest.raises(TrainingRequestError, match="dispatch scope"):
        export_dataset(ExportRequest(tmp_path / "x", api=sqlite_api.url))
    with pytest.raises(TrainingRequestError, match="no such file"):
        export_dataset(ExportRequest(tmp_path / "x", from_score=tmp_path / "none.jsonl"))
    with pytest.raises(TrainingRequestError, match="nope"):
        export_dataset(
            ExportRequest(tmp_path / "x", api=sqlite_api.url, key=dispatch, model="nope")
        )
    assert not (tmp_path / "x").exists()


def test_export_needs_a_key_and_refuses_a_bad_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("STREETWATCH_API_KEY", raising=False)
    assert (
        main(["dataset", "export", "--api", "http://127.0.0.1:9", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "dispatch scope" in capsys.readouterr().err
    assert main(["dataset", "export", "--out", str(tmp_path / "x")]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "data.yaml").write_text(
        "names: [a]\ntrain: images/train\nval: images/val\n"
    )
    assert main(["dataset", "import", str(tmp_path / "bad"), "--out", str(tmp_path / "y")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_export_from_score_output(default_model, vtest_avi, tmp_path, capsys):
    """Real `score` output (the parked van of vtest.avi, seen on two days): every case a
    positive, labelled with the box its evidence carries, on the unaltered frame. Day 2's
    footage is a darker copy, so the two days' frames are distinct images."""
    from tests.support.scenes import relit, render, video_frames

    darker = render(tmp_path / "day2.mp4", relit(video_frames(vtest_avi), 10, 0, 0.8), 20, 10)
    cams = [
        {
            "id": f"cam-{day}",
            "source": str(vtest_avi if day == 1 else darker),
            "start_time": f"2026-05-0{day}T08:00:00+08:00",
            "sample": {"fps": 2},
            "zones": [
                {
                    "id": "east",
                    "polygon": [[640, 40], [730, 40], [730, 105], [640, 105]],
                    "checks": ["illegal_parking"],
                }
            ],
        }
        for day in (1, 2)
    ]
    rules = {"illegal_parking": {"dwell_s": 10, "clear_s": 4}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": "default", "rules": rules, "cameras": cams}))
    cases = tmp_path / "cases.jsonl"
    assert (
        main(
            [
                "score",
                "--config",
                str(config),
                "--out",
                str(cases),
                "--evidence-dir",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    reports = [json.loads(line) for line in cases.read_text().splitlines()]
    assert len(reports) == 2
    out = tmp_path / "ds"
    assert main(["dataset", "export", "--from-score", str(cases), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert {c["id"] for c in manifest["cases"]} == {r["id"] for r in reports}
    assert manifest["images_per_split"] == {"train": 2, "val": 2}
    for report in reports:
        # The object's frames are the samples; the dwell strip's thumbnails are not exported.
        for ev in (e for e in report["evidence"] if e["kind"] in ("first_seen", "confirmed")):
            (entry,) = [e for e in manifest["images"] if e["sha256"] == ev["sha256"]]
            label = (out / entry["file"].replace("images/", "labels/", 1)).with_suffix(".txt")
            ((cls, xyxy),) = read_labels(label.read_text(), entry["width"], entry["height"])
            assert manifest["names"][cls] == report["class_name"]
            np.testing.assert_allclose(xyxy, ev["boxes"][0]["bbox"], atol=0.01)
    assert (
        main(
            [
                "dataset",
                "export",
                "--from-score",
                str(cases),
                "--out",
                str(tmp_path / "z"),
                "--val-fraction",
                "1.5",
            ]
        )
        == 2
    )
