"""Configuration of every ticketpost process, read from ``TICKETPOST_*`` environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

MIB = 1024 * 1024


def _split_list(value: object) -> object:
    """Accept a comma or whitespace separated string where a list is expected."""
    if isinstance(value, str):
        return [part.strip() for part in value.replace(",", " ").split() if part.strip()]
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> float:
    """``"24h"``, ``"30m"``, ``"90s"``, ``"2d"`` or plain seconds → seconds; ValueError otherwise."""
    text = value.strip().lower()
    if text and text[-1] in _UNITS:
        return float(text[:-1]) * _UNITS[text[-1]]
    return float(text)


class Settings(BaseSettings):
    """All knobs of ticketpost; defaults are the embedded, single-process mode."""

    model_config = SettingsConfigDict(env_prefix="TICKETPOST_", extra="ignore")

    database_url: str = "sqlite:///./ticketpost.db"
    redis_url: str | None = None
    redis_namespace: str = "dramatiq"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_hostname: str = "ticketpost.localhost"
    smtp_max_message_bytes: int = 25 * MIB
    smtp_max_connections: int = 100
    smtp_max_connections_per_ip: int = 20  # Postfix's default concurrency per destination
    smtp_max_recipients: int = 100
    smtp_idle_timeout_s: float = 300.0
    smtp_data_timeout_s: float = 600.0
    smtp_session_timeout_s: float = 1800.0
    smtp_tls_cert: str | None = None
    smtp_tls_key: str | None = None
    support_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    admin_token: str | None = None
    metrics_token: str | None = None
    # Request bodies above these sizes get 413: CSV imports, and everything else (JSON).
    api_max_import_bytes: int = 50 * MIB
    api_max_body_bytes: int = 1 * MIB

    unmatched_policy: Literal["triage", "reject"] = "triage"
    auto_create_contacts: bool = True
    require_authenticated_sender: bool = False
    trusted_authserv_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    dkim_verify: bool = False
    rate_limit_per_hour: int = 20

    secret_key: str | None = None

    # answering (SPEC §10): unset outbound_url = nothing is sent and nothing is queued
    outbound_url: str | None = None
    outbound_ca_file: str | None = None  # CA bundle to verify the outbound server (default: system)
    outbound_timeout_s: float = 30.0
    reply_from: str | None = None  # default: the first support address
    acknowledge_triaged: bool = False
    acknowledge_per_hour: int = 10  # acknowledgements per recipient per hour (0 = none)
    notice_interval: Annotated[float, NoDecode] = 24 * 3600.0  # seconds; "24h", "30m", "90s" too
    outbox_max_attempts: int = 10
    outbox_min_backoff_s: float = 30.0
    outbox_max_backoff_s: float = 3600.0
    outbox_lease_s: float = 120.0  # a claimed row is sent again after this if its sender died
    outbox_poll_interval_s: float = 5.0
    outbox_connections: int = 4  # mails of a batch sent at once, per process (one connection each)

    # webhooks (SPEC §11)
    webhooks_allow_private: bool = False  # let webhook URLs point at private/loopback addresses
    webhooks_connect_timeout_s: float = 5.0
    webhooks_read_timeout_s: float = 10.0
    webhooks_min_backoff_s: float = 10.0  # the first retry comes within 30 s (jitter included)
    webhooks_max_backoff_s: float = 3600.0
    webhooks_retry_window: Annotated[float, NoDecode] = 26 * 3600.0  # retried at least this long
    webhooks_per_endpoint: int = 2  # deliveries in flight to one endpoint at a time
    webhooks_concurrency: int = 64  # deliveries in flight per process, all endpoints together
    webhooks_poll_interval_s: float = 0.5
    webhooks_rotation_grace: Annotated[float, NoDecode] = 24 * 3600.0  # the old secret keeps signing
    webhooks_disable_after: Annotated[float, NoDecode] = 5 * 86400.0  # only failures this long: disabled
    webhooks_mailbox_failures: int = 3  # consecutive failures that make a mailbox unhealthy

    worker_threads: int = 2
    #: ids handed to the routing queue together travel as one message of up to this many, routed
    #: in one transaction (a savepoint each, one commit: routing.batch); 1 = one message per id
    route_batch_size: int = Field(default=32, ge=1, le=50)
    route_max_retries: int = 5
    sweeper_interval_s: float = 30.0
    sweeper_grace_s: float = 60.0
    route_min_backoff_ms: int = 1000
    route_max_backoff_ms: int = 60_000
    broker_heartbeat_timeout_ms: int = 60_000
    broker_maintenance_chance: int = 1000
    worker_poll_ms: int = 100
    shutdown_timeout_s: float = 30.0

    imap_sweep_interval_s: float = 60.0
    imap_idle_renew_s: float = 600.0
    imap_batch_size: int = 250  # and at most 64 MiB per batch (ingest.imap_sync.BATCH_BYTES)
    imap_timeout_s: float = 60.0
    imap_ca_file: str | None = None
    imap_backoff_initial_s: float = 1.0
    imap_backoff_max_s: float = 300.0
    imap_reload_interval_s: float = 10.0

    oauth2_timeout_s: float = 30.0
    #: after the provider refused a mailbox's credentials, wait at least this long before asking again
    oauth2_auth_failure_backoff_s: float = 300.0
    graph_poll_seconds: float = 15.0
    graph_page_size: int = 100
    graph_timeout_s: float = 60.0

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("support_addresses", "trusted_authserv_ids", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("notice_interval", "webhooks_retry_window", "webhooks_rotation_grace",
                     "webhooks_disable_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("support_addresses")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]

    @property
    def reply_address(self) -> str:
        """The From of every mail we send: REPLY_FROM, else the first support address."""
        if self.reply_from:
            return self.reply_from
        for address in self.support_addresses:
            return address.replace("*@", "support@", 1)
        return f"support@{self.smtp_hostname}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def smtp_on_loopback(self) -> bool:
        host = self.smtp_host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
