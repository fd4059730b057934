"""One Alembic revision a module, chained by `down_revision`. Loaded by Alembic, imported
by no module; a revision imports nothing of ours, so it runs the same whatever the code
around it becomes.
"""

__all__: list[str] = []
