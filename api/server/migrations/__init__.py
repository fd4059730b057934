"""The database's schema history, as Alembic revisions (`versions/`, run by `env.py`):
`streetwatch migrate` applies them. Loaded by Alembic, imported by no module.

May import `api.server` (its tables and settings); nothing else of ours.
"""

__all__: list[str] = []
