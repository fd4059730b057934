"""The intake service's configuration: one validated object, built from flags and environment.

Every field is read from a `STREETWATCH_<FIELD>` environment variable (`STREETWATCH_PORT`,
`STREETWATCH_PUBLIC_URL`, ...), and `streetwatch serve` has a `--<field>` flag for each; a
flag wins over the variable, the variable over the default. Lists are comma-separated.
`STREETWATCH_DATA` and `STREETWATCH_DB` are kept as the names of the first two.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.contract.codes import DEFAULT_CODES, CodeTable

# How long a worker's outbox remembers what it delivered (api.client.outbox.DELIVERED_KEEP_S); it
# retries undelivered reports for as long as it runs, behind its own Idempotency-Keys.
DELIVERED_KEEP_S = 7 * 24 * 3600

MiB = 1024 * 1024
# After each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 1 day, 1 day.
WEBHOOK_BACKOFF_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, 86400.0, 86400.0)


def default_data_dir() -> Path:
    if env := os.environ.get("STREETWATCH_DATA") or os.environ.get("STREETWATCH_DATA_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "streetwatch"


def _split(value: Any) -> Any:
    """`a,b,c` from a flag or variable; lists given in code pass through."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STREETWATCH_",
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )

    # -- storage ---------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir,
        validation_alias=AliasChoices("STREETWATCH_DATA", "STREETWATCH_DATA_DIR"),
        description="Evidence and the SQLite database (default ~/.local/share/streetwatch)",
    )
    db_url: str | None = Field(
        None,
        validation_alias=AliasChoices("STREETWATCH_DB", "STREETWATCH_DB_URL"),
        description="SQLAlchemy URL, e.g. postgresql://user@host/db; default: SQLite in the "
        "data directory",
    )
    codes: CodeTable = Field(DEFAULT_CODES, exclude=True)
    codes_file: Path | None = Field(
        None, description="Event-code table (YAML) replacing the default"
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Server secret (32+ characters) that encrypts webhook secrets at rest and "
        "signs media links; default: a random one kept in <data_dir>/secret.key (mode 0600). "
        "Prefer the variable: a flag shows in the process list",
    )

    # -- serving ---------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on")
    public_url: AnyHttpUrl | None = Field(
        None,
        description="The service's public base URL, for the absolute links it hands out "
        "(Open311 media_url); default: the address it listens on. Never the Host header",
    )
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or JSON")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="The least severe log lines written"
    )
    access_log: bool = Field(True, description="One log line per request")
    header_timeout_s: float = Field(
        10.0, gt=0, description="Close a connection whose request headers take longer"
    )
    body_timeout_s: float = Field(
        120.0, gt=0, description="Refuse (408) a request whose body takes longer to arrive"
    )
    body_idle_timeout_s: float = Field(
        20.0, gt=0, description="Refuse (408) a request whose body stalls this long"
    )
    keep_alive_s: float = Field(5.0, gt=0, description="Close idle keep-alive connections")

    # -- limits ----------------------------------------------------------------------------
    max_body_bytes: int = Field(64 * MiB, gt=0, description="Largest request body accepted")
    max_form_bytes: int = Field(64 * 1024, gt=0, description="Largest Open311 form body")
    max_evidence_bytes: int = Field(8 * MiB, gt=0, description="Largest evidence image")
    max_evidence_files: int = Field(32, gt=0, description="Most evidence files per request")
    max_image_pixels: int = Field(
        40_000_000,
        gt=0,
        description="Largest evidence image, width x height, read from its "
        "header before anything is decoded",
    )
    max_clock_skew_s: float = Field(
        300.0, ge=0, description="How far in the future a reported time may lie"
    )
    sign_in_attempts: int = Field(
        10,
        gt=0,
        description="Console sign-in attempts one client address may make at once, per API "
        "process; then one per sign_in_window_s / sign_in_attempts, more are refused with 429",
    )
    sign_in_window_s: float = Field(
        60.0, gt=0, description="The time in which an address regains all its sign-in attempts"
    )

    # -- merging ---------------------------------------------------------------------------
    merge_distance_m: float = Field(30.0, ge=0, description="Cross-camera merge radius")
    merge_window_s: float = Field(1800.0, ge=0, description="Merge reports this close in time")
    merge_min_iou: float = Field(0.1, gt=0, le=1, description="Same-camera site box overlap")

    # -- webhooks --------------------------------------------------------------------------
    webhook_backoff_s: Annotated[tuple[float, ...], NoDecode] = Field(
        WEBHOOK_BACKOFF_S,
        description="Retry delays after each failed attempt, comma-separated; the default "
        "spans about 3.2 days (the Standard Webhooks schedule, extended by two daily retries)",
    )
    webhook_jitter: float = Field(
        0.2, ge=0, lt=1, description="Each retry delay is spread by up to this fraction"
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Deadline of one delivery attempt, connection to answer"
    )
    webhook_poll_s: float = Field(
        1.0, gt=0, description="How often the dispatcher looks for deliveries that are due"
    )
    webhook_concurrency: int = Field(
        16, gt=0, description="Endpoints one process sends to at the same time"
    )
    webhook_max_retry_after_s: float = Field(
        86400.0, ge=0, description="The longest Retry-After of a receiver that is honoured"
    )
    webhook_disable_after_s: float = Field(
        5 * 86400.0,
        gt=0,
        description="Disable an endpoint that has failed without a success this long",
    )
    webhook_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Networks (CIDR, comma-separated) webhooks may reach although they are not "
        "public, for on-premises receivers, e.g. 10.20.0.0/16; by default only public "
        "addresses are allowed",
    )

    # -- fleet -----------------------------------------------------------------------------
    fleet_worker_ttl_s: float = Field(
        10.0,
        gt=0,
        description="A fleet worker without a heartbeat for this long is lost: its cameras "
        "go to the others (it stops them itself after as long without an answer); the time "
        "the API itself was down does not count (one TTL of grace after it starts)",
    )

    # -- retention -------------------------------------------------------------------------
    idempotency_ttl_s: float = Field(
        30 * 86400.0,
        gt=DELIVERED_KEEP_S,
        description="How long an Idempotency-Key is remembered; longer than a worker's "
        "outbox retries and remembers what it delivered (7 days)",
    )
    retention_closed_days: int | None = Field(
        None,
        gt=0,
        description="Delete closed cases (and their evidence) after this many "
        "days without a change; default: keep",
    )
    retention_rejected_days: int | None = Field(
        None, gt=0, description="Delete rejected cases after this many days; default: keep"
    )
    retention_duplicate_days: int | None = Field(
        None, gt=0, description="Delete duplicate cases after this many days; default: keep"
    )
    retention_originals_days: int | None = Field(
        None,
        gt=0,
        description="Delete the original evidence images of closed, rejected and duplicate "
        "cases after this many days without a change (their de-identified renditions and "
        "the case record stay, under the case retention above); default: keep",
    )
    prune_interval_s: float | None = Field(
        86400.0,
        gt=0,
        description="Run the retention policy this often (`streetwatch prune` "
        "once); 0 or empty: never",
    )
    migrate_on_start: bool = Field(
        True,
        description="Run pending migrations on start, under a lock; off: refuse to start "
        "unless `streetwatch migrate` has brought the schema up to date",
    )

    # -- the dispatch desk -----------------------------------------------------------------
    overdue_poll_s: float = Field(
        30.0, gt=0, description="How often dispatched cases are checked against their deadline"
    )
    verify_clear_s: float = Field(
        120.0,
        ge=0,
        description="After a department resolves a case, how long the camera may still see "
        "the object before the case goes back to it as not verified",
    )
    verified_auto_close: bool = Field(
        False,
        description="Close a resolved case as soon as its camera verified the object gone "
        "(otherwise a reviewer closes it)",
    )
    map_tile_url: str | None = Field(
        None,
        max_length=500,
        description="The city's own map tiles under the console's map: a URL template with "
        "{z}, {x} and {y} (Web Mercator, 256 px tiles), absolute or on this server "
        "(e.g. https://tiles.city.gov/{z}/{x}/{y}.png); unset: the map has no tile layer",
    )

    # -- Open311 ---------------------------------------------------------------------------
    open311_default_days: int = Field(90, gt=0, description="Default query window (Open311)")
    open311_max_days: int = Field(
        90, gt=0, description="Largest start_date..end_date span a query may ask for"
    )
    media_link_ttl_s: int = Field(
        7 * 24 * 3600, gt=0, description="How long a signed Open311 media_url stays valid"
    )

    @field_validator("map_tile_url")
    @classmethod
    def _tile_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in value]
        if missing:
            raise ValueError(f"the tile URL template lacks {', '.join(missing)}")
        if not re.fullmatch(r"(https?://[^/?#\s]+)?/\S*", value):
            raise ValueError("the tile URL must be http(s)://host/... or a path on this server")
        return value

    @field_validator("webhook_backoff_s", "webhook_allow_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("prune_interval_s", mode="before")
    @classmethod
    def _never(cls, value: Any) -> Any:
        return None if value in ("", "0", 0, "none", "never") else value

    @field_validator("webhook_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not a network (CIDR): {net!r}") from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("the secret key needs at least 32 characters")
        return value

    @model_validator(mode="after")
    def _load_codes(self) -> Settings:
        if self.codes_file is not None:
            self.codes = CodeTable.load(self.codes_file)
        return self

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'streetwatch.db'}"

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    @property
    def base_url(self) -> str:
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
