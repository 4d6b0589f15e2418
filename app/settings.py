"""The one place that reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args
from urllib.parse import unquote

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"
DEFAULT_DATABASE = "chorus"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
DatabaseSource = Literal["MONGODB_DATABASE", "MONGODB_URL", "default"]


class Settings(BaseSettings):
    """Every setting of the service. Each one is documented in `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # `cp .env.example .env` leaves `DISCORD_TOKEN=` and friends empty: that means "unset".
        env_ignore_empty=True,
    )

    # Database
    mongodb_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URL", "DATABASE_URL")
    )
    # Empty: the database named in MONGODB_URL (`mongodb://host/NAME`), else "chorus".
    mongodb_database: str = ""
    database_startup_timeout: float = Field(default=30.0, gt=0)
    data_dir: Path = Path("data")

    # Secrets
    token_encryption_keys: SecretStr | None = None
    discord_token: SecretStr | None = None

    # HTTP
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=3000, ge=0, le=65535)

    # Discord endpoints (HTTP proxies and tests)
    discord_api_base: str = DISCORD_API_BASE
    discord_gateway_url: str = DISCORD_GATEWAY_URL

    # Bot supervision
    bot_login_concurrency: int = Field(default=8, ge=1)
    # Longest a stop (SIGTERM) waits for the bots to close cleanly; within the 60 s that the compose
    # file and the Kubernetes manifest allow, with room for the rest of the shutdown.
    shutdown_timeout: float = Field(default=40.0, gt=0)
    bot_retry_initial_delay: float = Field(default=5.0, gt=0)
    bot_retry_max_delay: float = Field(default=300.0, gt=0)
    identify_budget_share: float = Field(default=0.5, gt=0, le=1)
    guild_ready_timeout: float = Field(default=2.0, ge=0)
    identify_interval: float = Field(default=5.0, ge=0)
    # A session must last this long before the retry backoff resets and lastError clears.
    bot_stable_after: float = Field(default=60.0, gt=0)
    # /health is degraded while an enabled bot has been starting/reconnecting longer than this.
    health_reconnect_threshold: float = Field(default=60.0, gt=0)
    # A bot recorded in this many guilds asks Discord (GET /gateway/bot) whether to shard.
    shard_check_guilds: int = Field(default=1000, ge=1)

    # Hot reload of the fleet from the database
    reload_mode: Literal["auto", "change_stream", "poll"] = "auto"
    reload_poll_interval: float = Field(default=10.0, gt=0)

    # The fleet of workers (docs/SCALING.md): every `chorus serve` on the same database is one
    # worker; bots are spread over the live ones through leases.
    lease_ttl: float = Field(default=15.0, ge=1.0)
    worker_capacity: int | None = Field(default=None, ge=0)
    worker_address: str | None = None

    # Fleet routing and invites
    bot_guild_cap: int = Field(default=100, ge=1)
    invite_expiry_seconds: float = Field(default=3600.0, gt=0)

    # Admin API (disabled when unset)
    admin_api_token: SecretStr | None = None

    # Clones: users bring their own bot token and get their own copy of the bot
    clone_enabled: bool = False
    owner_ids: str = ""  # comma-separated user ids: always allowed, see every clone
    clone_allowed_ids: str = ""  # comma-separated user or role ids allowed to clone
    clone_max_per_user: int = Field(default=1, ge=0)

    # Music (Lavalink through wavelink)
    lavalink_nodes: SecretStr | None = None
    music_search_prefix: str = "ytsearch"
    music_idle_timeout: float = Field(default=300.0, ge=0)
    music_queue_limit: int = Field(default=500, ge=1)
    music_max_track_seconds: int = Field(default=0, ge=0)
    lavalink_reconnect_max_delay: float = Field(default=10.0, gt=0)
    snapshot_interval: float = Field(default=10.0, gt=0)
    snapshot_max_age: float = Field(default=3600.0, gt=0)

    log_level: LogLevel = "INFO"
    # text: one readable line per record; json: one JSON object per line (app/log_format.py).
    log_format: Literal["text", "json"] = "text"
    # PyMongo's own loggers; unset: INFO at most (its DEBUG quotes every command and reply).
    log_level_pymongo: LogLevel | None = None

    # Monitoring: GET /metrics is open like /health unless this is set (then: Bearer METRICS_TOKEN).
    metrics_token: SecretStr | None = None

    # Where `mongodb_database` came from, and the URL's database when the setting overrides it.
    _database_source: DatabaseSource = PrivateAttr(default="default")
    _overridden_url_database: str | None = PrivateAttr(default=None)

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        # Only a known format is lower-cased, so an error shows the value as it was typed.
        if isinstance(value, str) and value.strip().lower() in ("text", "json"):
            return value.strip().lower()
        return value

    @field_validator("log_level", "log_level_pymongo", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        # Only a known level is upper-cased, so an error shows the value as it was typed.
        if isinstance(value, str) and value.strip().upper() in get_args(LogLevel):
            return value.strip().upper()
        return value

    @field_validator("discord_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("discord_gateway_url")
    @classmethod
    def _check_gateway_url(cls, value: str) -> str:
        # Used exactly as given (a proxy may serve the gateway on a path of its own).
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value

    @field_validator("mongodb_database")
    @classmethod
    def _check_database_name(cls, value: str) -> str:
        value = value.strip()
        if value:
            _check_database_name(value)
        return value

    @model_validator(mode="after")
    def _resolve_database(self) -> Settings:
        url = self.mongodb_url.get_secret_value().strip() if self.mongodb_url is not None else ""
        in_url = database_in_url(url) if url else None
        if in_url is not None:
            _check_database_name(in_url, where="MONGODB_URL: its database")
        if self.mongodb_database:
            self._database_source = "MONGODB_DATABASE"
            if in_url is not None and in_url != self.mongodb_database:
                self._overridden_url_database = in_url
        elif in_url is not None:
            self.mongodb_database, self._database_source = in_url, "MONGODB_URL"
        else:
            self.mongodb_database, self._database_source = DEFAULT_DATABASE, "default"
        return self

    @property
    def database_choice(self) -> str:
        """Which database is used and why, for the startup log."""
        name = self.mongodb_database
        if self._overridden_url_database is not None:
            return (
                f"database {name!r} (MONGODB_DATABASE; it overrides {self._overridden_url_database!r} "
                "named in MONGODB_URL)"
            )
        reason = {"MONGODB_DATABASE": "MONGODB_DATABASE", "MONGODB_URL": "named in MONGODB_URL"}
        return f"database {name!r} ({reason.get(self._database_source, 'the default')})"

    @property
    def database_overrides_url(self) -> bool:
        return self._overridden_url_database is not None

    @property
    def encryption_keys(self) -> list[str]:
        """The configured Fernet keys, primary first. Empty when none are set."""
        if self.token_encryption_keys is None:
            return []
        raw = self.token_encryption_keys.get_secret_value()
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def owner_id_set(self) -> frozenset[int]:
        return _id_set(self.owner_ids)

    @property
    def clone_allowed_id_set(self) -> frozenset[int]:
        return _id_set(self.clone_allowed_ids)

    @field_validator("owner_ids", "clone_allowed_ids")
    @classmethod
    def _check_ids(cls, value: str) -> str:
        _id_set(value)
        return value

    @property
    def uses_embedded_database(self) -> bool:
        return self.mongodb_url is None or not self.mongodb_url.get_secret_value().strip()


def _id_set(raw: str) -> frozenset[int]:
    parts = [part.strip() for part in raw.replace(" ", ",").split(",") if part.strip()]
    bad = [part for part in parts if not part.isdigit()]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a Discord id (digits only, comma-separated)")
    return frozenset(int(part) for part in parts)


_BAD_DATABASE_CHARACTERS = set('/\\. "$')


def _check_database_name(name: str, *, where: str = "") -> None:
    # MongoDB's own rules for database names (on every platform).
    bad = sorted(set(name) & _BAD_DATABASE_CHARACTERS)
    if bad or len(name.encode()) > 63:
        prefix = f"{where} " if where else ""
        why = f"it contains {''.join(bad)!r}" if bad else "it is longer than 63 bytes"
        raise ValueError(f"{prefix}{name!r} is not a valid MongoDB database name ({why})")


def database_in_url(url: str) -> str | None:
    """The database named in a MongoDB connection string (`mongodb://host/NAME?...`), or None.

    Parsed by hand: pymongo's parser resolves `mongodb+srv://` hosts over DNS, which settings
    must not do. Credentials cannot contain a raw `/` (the URI format requires escaping it).
    """
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    _, slash, path = rest.partition("/")
    name = unquote(path.partition("?")[0]) if slash else ""
    return name or None
