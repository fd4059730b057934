"""Scoring recorded files as fast as the machine allows: one camera's file (`scoring`),
many files with their parts kept for re-runs (`batch`), fanned out on Ray (`ray_batch`,
long files cut into keyframe spans by `chunks`), and the case counts of a model on a
scenario (`scenario`).

May import `streams.config`, `streams.sources`, `streams.camera`, `detector`, `models`,
`api.contract`; never `streams.live` or `streams.cli`.
"""

__all__ = ["batch", "chunks", "ray_batch", "scenario", "scoring"]
