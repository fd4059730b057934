"""Scoring recorded files as fast as the machine allows: a whole job, as `streetwatch score`
runs it (`job`: recordings chosen, parts kept for re-runs, merged into one file), its cases
posted through the worker's durable outbox (`post`), one camera's file (`scoring`), many
files with their parts (`batch`), and fanned out on Ray (`ray_batch`, long files cut into
keyframe spans by `chunks`).

May import `streams.config`, `streams.sources`, `streams.camera`, `detector`, `models`,
`api.contract`, `api.client`; never `streams.live`, `streams.training` or `streams.cli`.
"""

__all__ = ["batch", "chunks", "job", "post", "ray_batch", "scoring"]
