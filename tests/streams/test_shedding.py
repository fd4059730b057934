"""LoadShedder: the worker's overload rule, on explicit clock readings (no waiting)."""

from __future__ import annotations

import logging

from streams.live.shedding import LoadShedder


def test_stretch_grows_while_behind_and_returns_once_caught_up(caplog):
    shedder = LoadShedder(high_s=1.0, low_s=0.6, step=1.25, max_stretch=2.0, window_s=3.0)
    caplog.set_level(logging.INFO, logger="streams.live.shedding")
    # Within a window nothing changes, however bad one sample is.
    assert shedder.observe(5.0, now=0.0) is None
    assert shedder.observe(0.1, now=2.9) is None
    # One window behind (its worst lag, 5 s) is a spike: nothing yet.
    assert shedder.observe(0.1, now=3.0) is None
    # A second one in a row: one step slower.
    assert shedder.observe(1.5, now=6.0) == 1.25
    assert (
        "worker behind (lag up to 1.5 s, 0% of samples replaced unseen): every camera "
        "sampled 1.25x slower" in caplog.text
    )
    # Still behind: a step per window until the cap, then held.
    changes = [shedder.observe(1.5, now=6.0 + 3 * k) for k in range(1, 5)]
    assert changes == [1.5625, 1.953125, 2.0, None]
    # Lag between the bounds: held where it is.
    assert shedder.observe(0.8, now=21.0) is None
    # Caught up: back down one step per window, never below 1.
    downs = [shedder.observe(0.2, now=21.0 + 3 * k) for k in range(1, 6)]
    assert downs == [1.6, 1.28, 1.024, 1.0, None]
    assert shedder.stretch == 1.0
    assert "worker caught up (lag 0.2 s): sampling at 1.00x its interval" in caplog.text


def test_samples_replaced_unseen_count_as_behind_even_with_little_lag():
    counts = {"produced": 0, "dropped": 0}
    shedder = LoadShedder(lambda: (counts["produced"], counts["dropped"]), window_s=3.0)
    assert shedder.observe(0.2, now=0.0) is None
    counts.update(produced=100, dropped=10)  # a tenth replaced before the loop took them
    assert shedder.observe(0.2, now=3.0) is None
    counts.update(produced=200, dropped=20)  # and again
    assert shedder.observe(0.2, now=6.0) == 1.25
    counts.update(produced=300, dropped=21)  # 1 of 100 in the next window: caught up
    assert shedder.observe(0.2, now=9.0) == 1.0
    counts.update(produced=400, dropped=24)  # 3%: neither behind nor caught up
    shedder.stretch = 1.25
    assert shedder.observe(0.2, now=12.0) is None
