"""One camera, judged the same way live and offline: the runtime both loops drive
(`runtime`), the engines with their labels it runs (`engines`, `model_set`), its evidence
(`evidence`), its saved sites (`site_store`) brought up to the reports its outbox or the API
hold (`reconcile`), the reviewers' suppressions matched to its incidents (`suppressions`) and
the full-resolution record stream of a live camera (`record`).

May import `streams.config`, `streams.sources`, `detector`, `models`, `api.contract`;
never `streams.live`, `streams.offline` or `streams.cli`.
"""

__all__ = [
    "engines",
    "evidence",
    "model_set",
    "reconcile",
    "record",
    "runtime",
    "site_store",
    "suppressions",
]
