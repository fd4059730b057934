"""Training's flows, as `streetwatch dataset` and `train` run them and a test can call them:
a dataset from reviewed cases in the intake API, from `score` output or from a YOLO folder
(`dataset`), a detector trained, registered, quantised and evaluated, and two models
compared on the same data (`flow`), with the case counts of a model on a scenario config
(`scenario`); what was asked wrong or what failed is one of `errors`. Training itself and
the dataset layout are `models.train` and `models.dataset`: `models` may not reach the
engine or the API, which these flows need.

May import `streams.config`, `streams.camera`, `streams.offline` (a scenario is scored
offline), `detector`, `models`, `api.contract`, `api.client`; never `streams.live`,
`streams.cli` or `streams.demo`.
"""

__all__ = ["dataset", "errors", "flow", "scenario"]
