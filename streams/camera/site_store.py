"""A live camera's open sites on disk, so a restarted worker continues its incidents.

Per camera, in the worker's state directory: `state.json` (every open site with absolute
times, the reports of its confirmed incidents and their evidence references), the sites'
first-seen frames as JPEGs, and the static stage's backgrounds (`static.npz`). Written
atomically: at once with each incident event and at a clean stop (`save`), and every few
seconds for cameras whose state changed (`save_soon`: on a writer thread, so the loop never
waits for the disk's fsyncs; a newer state replaces a pending older one). A `kill -9` loses
at most the last interval, which the restarted worker observes again; one right after an
incident event went to the outbox, before the sites were saved, leaves them a step behind
the outbox, which the restarted camera catches up with (streams/camera/reconcile.py). A
state may leave the backgrounds out (`keeps_static`): the ones on disk then stand
(streams/live/live_camera.py writes them less often than the sites: they change slowly and
are most of the bytes).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from api.contract import CaseReport, EvidenceRef
from detector.pipeline import PipelineState
from streams.camera.evidence import write_atomic

log = logging.getLogger(__name__)

FORMAT = 1
MAX_AGE_S = 24 * 3600.0  # older state describes a street that has surely changed


@dataclass(slots=True)
class CameraState:
    pipeline: PipelineState
    reports: dict[str, CaseReport] = field(default_factory=dict)  # open incidents, by id
    evidence: dict[str, list[EvidenceRef]] = field(default_factory=dict)
    saved_at: float = field(default_factory=time.time)
    # The pipeline's backgrounds are left out: the ones on disk stand (else, with none,
    # there are none: the camera has no static stage).
    keeps_static: bool = False


def _present(refs: list[dict]) -> list[dict]:
    """Evidence references whose files (the image and its rendition) are on this machine:
    state handed over from another worker names files on that worker's disk (already sent
    to the API with its report)."""
    return [r for r in refs if all(Path(p).is_file() for p in _files(r))]


def _files(ref: dict) -> list[str]:
    rendition = ref.get("deidentified")
    return [ref.get("path", ""), *([rendition["path"]] if rendition else [])]


class SiteStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # the loop saves while a fleet thread packs or unpacks
        self._order = itertools.count()  # states in the order they were taken
        self._written: dict[str, int] = {}  # per camera, the newest state on disk
        self._pending: dict[str, tuple[int, CameraState]] = {}  # for the writer thread
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closing = False

    def _dir(self, camera_id: str) -> Path:
        # Hashed: a camera id may be "..", and it names a directory here.
        return self.directory / hashlib.sha256(camera_id.encode()).hexdigest()[:16]

    def save(self, camera_id: str, state: CameraState) -> None:
        """Writes the camera's state now; raises OSError if the disk refuses (the caller
        logs). A pending `save_soon` of an older state is dropped."""
        order = next(self._order)
        with self._wake:
            self._pending.pop(camera_id, None)
        self._write(camera_id, order, state)

    def save_soon(self, camera_id: str, state: CameraState) -> None:
        """Queues the camera's state for the writer thread and returns at once; failures are
        logged there (the next change is saved again)."""
        order = next(self._order)
        with self._wake:
            if self._writer is None:
                self._writer = threading.Thread(target=self._drain, name="sites", daemon=True)
                self._writer.start()
            self._pending[camera_id] = (order, state)
            self._wake.notify()

    def close(self) -> None:
        """Writes what is pending and ends the writer thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            writer = self._writer
        if writer is not None:
            writer.join()

    def _drain(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:
                    return
                camera_id = next(iter(self._pending))
                order, state = self._pending.pop(camera_id)
            try:
                self._write(camera_id, order, state)
            except OSError as exc:
                log.error("camera %s: cannot save its open sites (%s)", camera_id, exc)

    def _write(self, camera_id: str, order: int, state: CameraState) -> None:
        with self._lock:
            if self._written.get(camera_id, -1) > order:
                return  # a newer state was written meanwhile
            self._save(camera_id, state)
            self._written[camera_id] = order

    def _save(self, camera_id: str, state: CameraState) -> None:
        folder = self._dir(camera_id)
        folder.mkdir(parents=True, exist_ok=True)
        shots = {}
        for key, image in state.pipeline.shots.items():
            # One JPEG per site's first frame, written once: keyed by its site and time.
            sites_key, _, index = key.rpartition("|")
            at = state.pipeline.sites[sites_key][int(index)]["first_shot_at"]
            name = hashlib.sha256(f"{sites_key}|{at!r}".encode()).hexdigest()[:20] + ".jpg"
            if not (folder / name).exists():
                ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                if ok:
                    write_atomic(folder / name, jpeg.tobytes())
            shots[key] = name
        if state.pipeline.static is not None:
            buffer = io.BytesIO()
            np.savez(buffer, **state.pipeline.static)
            write_atomic(folder / "static.npz", buffer.getvalue())
        elif not state.keeps_static:
            (folder / "static.npz").unlink(missing_ok=True)
        document = {
            "format": FORMAT,
            "camera_id": camera_id,
            "saved_at": state.saved_at,
            "sites": state.pipeline.sites,
            "shots": shots,
            "reports": {k: r.model_dump(mode="json") for k, r in state.reports.items()},
            "evidence": {
                k: [r.model_dump(mode="json") for r in refs] for k, refs in state.evidence.items()
            },
        }
        write_atomic(folder / "state.json", json.dumps(document).encode())
        for stale in set(p.name for p in folder.glob("*.jpg")) - set(shots.values()):
            (folder / stale).unlink(missing_ok=True)

    def load(self, camera_id: str) -> CameraState | None:
        """The camera's saved state, or None (none, too old, or unreadable: logged)."""
        with self._lock:
            return self._load(camera_id)

    def _load(self, camera_id: str) -> CameraState | None:
        folder = self._dir(camera_id)
        path = folder / "state.json"
        if not path.exists():
            return None
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("format") != FORMAT or document.get("camera_id") != camera_id:
                raise ValueError("another format or camera")
            age = time.time() - float(document["saved_at"])
            if age > MAX_AGE_S:
                log.info(
                    "camera %s: saved sites are %.0f h old; starting afresh", camera_id, age / 3600
                )
                return None
            shots = {}
            for key, name in document["shots"].items():
                image = cv2.imread(str(folder / name))
                if image is not None:
                    shots[key] = image
            static_path = folder / "static.npz"
            static = None
            if static_path.exists():
                with np.load(static_path) as npz:
                    static = {k: npz[k] for k in npz.files}
            return CameraState(
                PipelineState(document["sites"], shots, static),
                {
                    k: CaseReport.model_validate({**r, "evidence": _present(r["evidence"])})
                    for k, r in document["reports"].items()
                },
                {
                    k: [EvidenceRef.model_validate(r) for r in _present(refs)]
                    for k, refs in document["evidence"].items()
                },
                float(document["saved_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error(
                "camera %s: cannot read its saved sites (%s); starting afresh", camera_id, exc
            )
            return None

    def forget(self, camera_id: str) -> None:
        """Drops a removed camera's state."""
        with self._wake:
            self._pending.pop(camera_id, None)
        with self._lock:
            self._written[camera_id] = next(self._order)  # a write already taken is stale
            shutil.rmtree(self._dir(camera_id), ignore_errors=True)

    # -- handing a camera's state to another worker (streams/live/fleet.py) -----------------------

    def pack(self, camera_id: str) -> bytes | None:
        """The camera's saved state as one archive, None if there is none."""
        with self._lock:
            folder = self._dir(camera_id)
            if not (folder / "state.json").is_file():
                return None
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
                for path in sorted(folder.iterdir()):
                    if path.is_file() and not path.name.startswith("."):
                        tar.add(path, arcname=path.name)
            return buffer.getvalue()

    def unpack(self, camera_id: str, data: bytes) -> None:
        """Replaces the camera's state with an archive `pack` made (on any worker); raises
        ValueError for anything else (the caller then starts the camera afresh)."""
        with self._lock:
            folder = self._dir(camera_id)
            staging = folder.with_name(folder.name + ".incoming")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                    for member in tar.getmembers():
                        if not member.isfile() or Path(member.name).name != member.name:
                            raise ValueError(f"unexpected archive member {member.name!r}")
                    tar.extractall(staging, filter="data")
            except (tarfile.TarError, OSError, EOFError) as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise ValueError(f"not a camera state archive: {exc}") from exc
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
