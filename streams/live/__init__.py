"""The live worker: one loop over many RTSP cameras with batched inference (`worker`), each
camera a `live_camera` that owns its state and publishes what happened (`live_events`) to the
sinks that subscribe (`sinks`): the outbox, load shedding (`shedding`), health reports and
the health port (`health_report`, `health_http`), Prometheus metrics (`metrics`), cameras
assigned by the fleet (`fleet`) and a candidate model in shadow (`shadow`).

May import `streams.config`, `streams.sources`, `streams.camera`, `detector`, `models`,
`api.contract` and the worker's client and outbox; never `streams.offline` or `streams.cli`.
"""

__all__ = [
    "fleet",
    "health_http",
    "health_report",
    "live_camera",
    "live_events",
    "metrics",
    "shadow",
    "shedding",
    "sinks",
    "supervisor",
    "worker",
]
