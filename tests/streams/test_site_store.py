"""The site store's writes behind the loop: the newest state always wins, whichever path
wrote it, and a forgotten camera stays forgotten."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from detector.pipeline import PipelineState
from streams.camera.site_store import CameraState, SiteStore

T0 = time.time() - 3600.0  # within the store's 24 h


def state(n: int) -> CameraState:
    """A state that says which one it is: its saved_at and its static background."""
    static = {"short": np.full((4, 6, 3), n % 256, np.uint8)}
    return CameraState(PipelineState({"street|parking": []}, {}, static), saved_at=T0 + n)


def test_save_soon_writes_behind_and_close_flushes(tmp_path: Path) -> None:
    store = SiteStore(tmp_path)
    for n in range(20):
        store.save_soon("cam-1", state(n))
    store.close()
    loaded = SiteStore(tmp_path).load("cam-1")
    assert loaded is not None and loaded.saved_at == T0 + 19
    assert loaded.pipeline.static is not None
    assert int(loaded.pipeline.static["short"][0, 0, 0]) == 19


def test_a_state_without_backgrounds_keeps_the_saved_ones_only_when_it_says_so(
    tmp_path: Path,
) -> None:
    """The live camera saves its sites every few seconds and the backgrounds less often: a
    state that leaves them out keeps the ones on disk; one with none (no static stage any
    more) drops them."""
    store = SiteStore(tmp_path)
    store.save("cam-1", state(7))
    sites_only = CameraState(PipelineState({"street|parking": []}, {}, None), saved_at=T0 + 8)
    sites_only.keeps_static = True
    store.save("cam-1", sites_only)
    loaded = store.load("cam-1")
    assert loaded is not None and loaded.saved_at == T0 + 8
    assert loaded.pipeline.static is not None
    assert int(loaded.pipeline.static["short"][0, 0, 0]) == 7
    store.save(
        "cam-1", CameraState(PipelineState({"street|parking": []}, {}, None), saved_at=T0 + 9)
    )
    loaded = store.load("cam-1")
    assert loaded is not None and loaded.saved_at == T0 + 9
    assert loaded.pipeline.static is None


def test_newest_state_wins_between_saves_now_and_saves_soon(tmp_path: Path) -> None:
    store = SiteStore(tmp_path)
    for n in range(60):
        # An incident event's save (now) between periodic ones (soon): a pending older
        # state must never land after a newer one.
        if n % 3 == 2:
            store.save("cam-1", state(n))
        else:
            store.save_soon("cam-1", state(n))
        store.save_soon("cam-2", state(n))
    store.save("cam-1", state(100))
    store.close()
    reader = SiteStore(tmp_path)
    assert reader.load("cam-1").saved_at == T0 + 100  # type: ignore[union-attr]
    assert reader.load("cam-2").saved_at == T0 + 59  # type: ignore[union-attr]


def test_forget_drops_a_pending_state(tmp_path: Path) -> None:
    store = SiteStore(tmp_path)
    for n in range(10):
        store.save_soon("gone", state(n))
    store.forget("gone")
    store.close()
    assert SiteStore(tmp_path).load("gone") is None
    assert not any(tmp_path.iterdir())


def test_a_refusing_disk_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "sites"
    blocked.write_text("a file where the directory should be")
    store = SiteStore(blocked)
    with caplog.at_level(logging.ERROR, logger="streams.camera.site_store"):
        store.save_soon("cam-1", state(1))
        store.close()
    assert "cam-1: cannot save its open sites" in caplog.text
    with pytest.raises(OSError):
        store.save("cam-1", state(2))  # the loop's own saves still raise, for it to log


def test_a_state_taken_before_a_newer_save_is_not_written_over_it(tmp_path: Path) -> None:
    store = SiteStore(tmp_path)
    older = next(store._order)  # the writer thread took this state from the queue...
    store.save("cam-1", state(2))  # ...then an incident event saved a newer one at once
    store._write("cam-1", older, state(1))  # the writer's write comes last, and is skipped
    assert store.load("cam-1").saved_at == T0 + 2  # type: ignore[union-attr]
