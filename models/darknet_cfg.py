"""Parse a Darknet .cfg into typed layers (the subset YOLOv4-tiny and YOLOv3-tiny use)."""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import ModelError


@dataclass(frozen=True, slots=True)
class Conv:
    filters: int
    size: int
    stride: int
    padding: int
    batch_normalize: bool
    activation: str  # "leaky" or "linear"


@dataclass(frozen=True, slots=True)
class Route:
    layers: tuple[int, ...]  # absolute layer indices
    groups: int
    group_id: int


@dataclass(frozen=True, slots=True)
class MaxPool:
    size: int
    stride: int


@dataclass(frozen=True, slots=True)
class Upsample:
    stride: int


@dataclass(frozen=True, slots=True)
class Yolo:
    anchors: tuple[tuple[float, float], ...]  # (w, h) in input pixels, for this head's mask
    classes: int
    scale_x_y: float


Layer = Conv | Route | MaxPool | Upsample | Yolo


@dataclass(frozen=True, slots=True)
class Network:
    width: int
    height: int
    channels: int
    layers: tuple[Layer, ...]


def _sections(text: str) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append((line.strip("[]").strip(), {}))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
        else:
            raise ModelError(f"darknet cfg: cannot parse line {raw!r}")
    return sections


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def _layer(kind: str, opts: dict[str, str], index: int) -> Layer:
    match kind:
        case "convolutional":
            if int(opts.get("groups", 1)) != 1:
                raise ModelError("darknet cfg: grouped convolutions are not supported")
            size = int(opts.get("size", 1))
            pad = int(opts.get("pad", 0))
            return Conv(
                filters=int(opts["filters"]),
                size=size,
                stride=int(opts.get("stride", 1)),
                padding=size // 2 if pad else int(opts.get("padding", 0)),
                batch_normalize=bool(int(opts.get("batch_normalize", 0))),
                activation=opts.get("activation", "logistic"),
            )
        case "route":
            layers = tuple(i if i >= 0 else index + i for i in _ints(opts["layers"]))
            return Route(layers, int(opts.get("groups", 1)), int(opts.get("group_id", 0)))
        case "maxpool":
            size = int(opts.get("size", 1))
            return MaxPool(size, int(opts.get("stride", size)))
        case "upsample":
            return Upsample(int(opts.get("stride", 2)))
        case "yolo":
            flat = [float(v) for v in opts["anchors"].split(",")]
            pairs = list(zip(flat[0::2], flat[1::2], strict=True))
            mask = _ints(opts.get("mask", ",".join(str(i) for i in range(len(pairs)))))
            return Yolo(
                anchors=tuple(pairs[m] for m in mask),
                classes=int(opts["classes"]),
                scale_x_y=float(opts.get("scale_x_y", 1.0)),
            )
    raise ModelError(f"darknet cfg: layer type [{kind}] is not supported")


def parse_cfg(text: str) -> Network:
    sections = _sections(text)
    if not sections or sections[0][0] not in ("net", "network"):
        raise ModelError("darknet cfg: the first section must be [net]")
    net = sections[0][1]
    layers = tuple(_layer(kind, opts, i) for i, (kind, opts) in enumerate(sections[1:]))
    for layer in layers:
        if isinstance(layer, Conv) and layer.activation not in ("leaky", "linear"):
            raise ModelError(f"darknet cfg: activation {layer.activation!r} is not supported")
    return Network(int(net["width"]), int(net["height"]), int(net.get("channels", 3)), layers)
