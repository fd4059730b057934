"""Frames to incidents: the inference engine and one camera's path from detections to
incident events, the same live and offline.

Owns the engine (`engine`: batched ONNX Runtime, with `letterbox` and `postprocess`), the
motion gate (`motion`), the per-camera stages (`stages`, `tracker`, `static_objects`), zones
and site rules (`zones`, `rules`, `geometry`), incident state (`incidents`) and each site's
dwell strip of thumbnails (`strip`), several models
on one camera (`model_mix`), the pipeline that strings them together (`pipeline`), the data
that flows through it (`types`), ground calibration (`ground`), the plate reader (`plates`),
de-identified evidence (`deidentify`), and measuring a model (`evaluation`, `calibration`).

May import `models` and `api.contract`; never `streams`, `api.client` or `api.server`
(tests/test_architecture.py).
"""

__all__ = [
    "calibration",
    "deidentify",
    "engine",
    "evaluation",
    "geometry",
    "ground",
    "incidents",
    "letterbox",
    "model_mix",
    "motion",
    "pipeline",
    "plates",
    "postprocess",
    "rules",
    "stages",
    "static_objects",
    "strip",
    "tracker",
    "types",
    "zones",
]
