"""The intake service's configuration: one validated object, built from flags and environment."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from api.codes import DEFAULT_CODES, CodeTable

MiB = 1024 * 1024


def default_data_dir() -> Path:
    if env := os.environ.get("STREETWATCH_DATA"):
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "streetwatch"


class Settings(BaseModel):
    data_dir: Path = Field(default_factory=default_data_dir)
    db_url: str | None = Field(
        default_factory=lambda: os.environ.get("STREETWATCH_DB") or None,
        description="SQLAlchemy URL; default: SQLite in the data directory",
    )
    codes: CodeTable = DEFAULT_CODES

    max_body_bytes: int = Field(64 * MiB, gt=0, description="Largest request body accepted")
    max_evidence_bytes: int = Field(8 * MiB, gt=0, description="Largest evidence image")
    max_evidence_files: int = Field(32, gt=0, description="Most evidence files per request")

    merge_distance_m: float = Field(30.0, ge=0, description="Cross-camera merge radius")
    merge_window_s: float = Field(1800.0, ge=0, description="Merge reports this close in time")
    merge_min_iou: float = Field(0.1, gt=0, le=1, description="Same-camera site box overlap")

    webhook_backoff_s: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000)
    webhook_timeout_s: float = 10.0
    webhook_poll_s: float = 1.0

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'streetwatch.db'}"

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"
