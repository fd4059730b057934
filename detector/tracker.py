"""A light multi-object tracker: IoU association in two passes (ByteTrack's idea), media time.

Tracks survive missed detections for `max_age_s` of media time, so a short occlusion keeps
the same id. Rules do not depend on tracker ids (incidents are keyed by site); tracks give
evidence continuity and per-object identity to whoever wants it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.geometry import box_iou, greedy_match
from detector.types import Detections

# A track missed in the samples before, for longer than this, starts staying anew when found
# again (a passer-by taken for an earlier one); a briefly hidden vendor still stays.
STAY_GAP_S = 3.0


@dataclass(slots=True)
class Track:
    id: int
    class_id: int
    box: np.ndarray  # xyxy of the last match
    anchor: np.ndarray  # xyxy where the track started: how far it wandered is measured here
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    # Where and since when the object has stayed about one spot: moved on from whenever it
    # wanders further than `stay_move` of its smaller side (a vendor who walks round their goods
    # and stops again stays anew there; a passer-by never stays).
    spot: np.ndarray | None = None
    spot_since: float = 0.0
    away: int = 0  # observations in a row away from the spot (one is a box merged or cut)
    peak: float = 0.0  # the best score it was seen with


class Tracker:
    def __init__(
        self,
        max_age_s: float = 3.0,
        high_score: float = 0.5,
        match_iou: float = 0.3,
        stay_move: float = 0.5,
    ) -> None:
        self.max_age_s = max_age_s
        self.stay_move = stay_move
        self.high_score = high_score
        self.match_iou = match_iou
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_pts = float("-inf")  # of the last update

    def update(self, detections: Detections, pts: float) -> np.ndarray:
        """Associates detections with tracks; returns the track id of each detection."""
        self.tracks = [t for t in self.tracks if pts - t.last_seen <= self.max_age_s]
        previous, self._last_pts = self._last_pts, pts
        ids = np.zeros(len(detections), np.int64)
        unmatched_tracks = list(range(len(self.tracks)))
        high = np.flatnonzero(detections.scores >= self.high_score)
        low = np.flatnonzero(detections.scores < self.high_score)
        # Confident detections first, then weak ones, which extend what the confident left and
        # then open their own: someone the model sees only weakly (sitting, half hidden) is
        # still followed, so how long they stay is known.
        for pool in (high, low):
            pool_left = set(pool.tolist())
            if unmatched_tracks and len(pool):
                track_boxes = np.stack([self.tracks[i].box for i in unmatched_tracks])
                iou = box_iou(track_boxes, detections.boxes[pool])
                same_class = (
                    np.array([self.tracks[i].class_id for i in unmatched_tracks])[:, None]
                    == detections.class_ids[pool][None, :]
                )
                matched = greedy_match(np.where(same_class, iou, 0.0), self.match_iou)
                for ti, di in matched:
                    track = self.tracks[unmatched_tracks[ti]]
                    det = int(pool[di])
                    track.box = detections.boxes[det].copy()
                    # Unseen in the samples between, for a while: who it was is not sure.
                    lost = track.last_seen < previous and pts - track.last_seen > STAY_GAP_S
                    self._follow_spot(track, pts, lost)
                    track.score = float(detections.scores[det])
                    track.peak = max(track.peak, track.score)
                    track.last_seen = pts
                    track.hits += 1
                    ids[det] = track.id
                    pool_left.discard(det)
                done = {unmatched_tracks[ti] for ti, _ in matched}
                unmatched_tracks = [i for i in unmatched_tracks if i not in done]
            for det in sorted(pool_left):
                track = Track(
                    id=self._next_id,
                    class_id=int(detections.class_ids[det]),
                    box=detections.boxes[det].copy(),
                    anchor=detections.boxes[det].copy(),
                    score=float(detections.scores[det]),
                    peak=float(detections.scores[det]),
                    first_seen=pts,
                    last_seen=pts,
                    spot=detections.boxes[det].copy(),
                    spot_since=pts,
                )
                self._next_id += 1
                self.tracks.append(track)
                ids[det] = track.id
        return ids

    def _follow_spot(self, track: Track, pts: float, lost: bool) -> None:
        """Moves the track's spot once it has been seen away from it twice in a row: a box
        that swells for one frame (someone passing in front, merged with it) is no move.
        A track found again after it was lost stays anew."""
        if track.spot is None or lost:
            track.spot, track.spot_since, track.away = track.box.copy(), pts, 0
        elif _drift(track.spot, track.box) <= self.stay_move * _size(track.spot):
            track.away = 0
        else:
            track.away += 1
            if track.away >= 2:
                track.spot, track.spot_since, track.away = track.box.copy(), pts, 0

    def stays(self, ids: np.ndarray, pts: float) -> np.ndarray:
        """How long each tracked detection has stayed about its current spot (seconds); none
        while it is seen away from it (a vendor setting off round their goods is not staying
        where they walk)."""
        by_id = {t.id: t for t in self.tracks}
        return np.array(
            [
                pts - t.spot_since if (t := by_id.get(i)) is not None and not t.away else 0.0
                for i in ids.tolist()
            ],
            np.float64,
        )

    def peaks(self, ids: np.ndarray) -> np.ndarray:
        """The best score each tracked detection's track was ever seen with."""
        by_id = {t.id: t for t in self.tracks}
        return np.array(
            [t.peak if (t := by_id.get(i)) is not None else 0.0 for i in ids.tolist()],
            np.float32,
        )

    def stationary(self, ids: np.ndarray, pts: float, min_s: float, max_move: float) -> np.ndarray:
        """Whether each tracked detection has stayed near where its track started for at least
        `min_s`: a person who stands (a vendor), not one walking past."""
        by_id = {t.id: t for t in self.tracks}
        out = np.zeros(len(ids), bool)
        for i, track_id in enumerate(ids.tolist()):
            t = by_id.get(track_id)
            if t is None or pts - t.first_seen < min_s:
                continue
            size = max(float(t.anchor[2] - t.anchor[0]), float(t.anchor[3] - t.anchor[1]), 1.0)
            drift = np.hypot(*((t.box[:2] + t.box[2:]) - (t.anchor[:2] + t.anchor[2:])) * 0.5)
            out[i] = drift <= max_move * size
        return out


def _size(box: np.ndarray) -> float:
    """A box's smaller side: a standing person is as far from their spot after half a step
    (half their width) as a car after half its width, whatever their height."""
    return max(min(float(box[2] - box[0]), float(box[3] - box[1])), 1.0)


def _drift(a: np.ndarray, b: np.ndarray) -> float:
    """How far the centre of box b lies from box a's."""
    return float(np.hypot(*((b[:2] + b[2:]) - (a[:2] + a[2:])) * 0.5))
