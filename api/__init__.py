"""The intake API, in three packages by who uses them.

- `api.contract`: the wire types and vocabulary (incident types, cases, codes, suppression
  rules, fleet assignments, the evidence drawing). Every package may import it; it imports
  nothing of ours outside itself.
- `api.client`: a worker's side of the wire (client, durable outbox, backoff). Imports only
  `api.contract` of ours, and never the server's stack (FastAPI, SQLAlchemy, ...).
- `api.server`: the intake service (FastAPI app, routes, storage, console, migrations,
  webhooks, Open311, its commands). Imports `api.contract` and nothing from `api.client`,
  `detector`, `models` or `streams`.

`tests/test_architecture.py` keeps these arrows one way.
"""

__all__ = ["client", "contract", "server"]
