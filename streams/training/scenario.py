"""Case-level counts of a model on a scenario: a config's file cameras scored offline.

What a reviewer would receive is the figure that matters (DESIGN: every false report costs a
human), so model evaluation and comparison count cases, not only boxes.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from api.contract import IncidentType
from streams.config import load_config


def case_counts(config_path: Path, model: str | Path) -> dict[str, int]:
    """Cases per incident type (every type listed, zeros included) when `model` scores the
    config's file cameras; the config's choice of models is replaced by `model` for all."""
    from streams.camera.engines import load
    from streams.camera.evidence import EvidenceWriter
    from streams.offline.scoring import score_camera

    config = load_config(config_path)
    config = config.model_copy(
        update={
            "model": str(model),
            "models_by_type": {},
            "cameras": [c.model_copy(update={"model": None}) for c in config.cameras],
        }
    )
    loaded = load(config)
    counts: Counter[str] = Counter({t.value: 0 for t in IncidentType})
    with tempfile.TemporaryDirectory() as tmp:
        for camera in (c for c in config.cameras if not c.is_live):
            result = score_camera(
                camera, loaded.engine, config, loaded.labels, EvidenceWriter(Path(tmp))
            )
            if result.error:
                raise ValueError(f"scenario {config_path}: {result.error}")
            counts.update(str(r.type) for r in result.cases)
    return dict(counts)
