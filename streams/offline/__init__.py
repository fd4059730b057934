"""Scoring recorded files as fast as the machine allows: a whole job, as `streetwatch score`
runs it (`job`: recordings chosen, parts kept for re-runs, merged into one file), its cases
posted through the worker's durable outbox (`post`), one camera's file (`scoring`), many
files with their parts (`batch`), fanned out on Ray (`ray_batch`, long files cut into
keyframe spans by `chunks`), and the case counts of a model on a scenario (`scenario`).

May import `streams.config`, `streams.sources`, `streams.camera`, `detector`, `models`,
`api.contract`, `api.client`; never `streams.live` or `streams.cli`.
"""

__all__ = ["batch", "chunks", "job", "post", "ray_batch", "scenario", "scoring"]
