"""A mailbox we poll (IMAP or Microsoft Graph), how it logs in, its checkpoint and its health."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, LargeBinary, String, Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


MAILBOX_KINDS = ("imap", "graph")
MAILBOX_AUTHS = ("password", "oauth2")
OAUTH2_PROVIDERS = ("microsoft", "google", "generic")
#: ``service_account`` is Google's domain-wide delegation (the key JSON is the client secret).
OAUTH2_GRANTS = ("client_credentials", "refresh_token", "service_account")
GRAPH_BASE_URL = "https://graph.microsoft.com"
#: The scope a token is asked for when the mailbox names none: (provider, kind, grant) → scope.
DEFAULT_SCOPES = {
    ("microsoft", "imap", "client_credentials"): "https://outlook.office365.com/.default",
    ("microsoft", "imap", "refresh_token"):
        "https://outlook.office365.com/IMAP.AccessAsUser.All offline_access",
    ("microsoft", "graph", "client_credentials"): "https://graph.microsoft.com/.default",
    ("microsoft", "graph", "refresh_token"):
        "https://graph.microsoft.com/Mail.ReadWrite offline_access",
    ("google", "imap", "refresh_token"): "https://mail.google.com/",
    ("google", "imap", "service_account"): "https://mail.google.com/",
}


def default_scope(provider: str | None, kind: str, grant: str | None) -> str | None:
    """The scope asked for when a mailbox names none (the generic provider: none)."""
    return DEFAULT_SCOPES.get((provider or "", kind, grant or ""))


def default_grant(provider: str | None) -> str:
    """``refresh_token`` (delegated) for google, ``client_credentials`` (app-only) otherwise."""
    return "refresh_token" if provider == "google" else "client_credentials"


class Mailbox(Base):
    """A mailbox account and folder; every secret is stored encrypted (Fernet, SECRET_KEY).

    ``kind`` is ``imap`` (host, port, username) or ``graph`` (Microsoft Graph: ``username`` holds
    the Graph ``user``, ``host`` the Graph host). ``auth`` is ``password`` or ``oauth2`` (the
    ``oauth2_*`` columns). A rotated refresh token replaces ``oauth2_refresh_token_encrypted``
    before its access token is used (models.oauth2).
    """

    __tablename__ = "mailboxes"
    __table_args__ = (CheckConstraint("security IN ('ssl', 'starttls', 'none')", name="security"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int | None] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(10), default="ssl")
    username: Mapped[str] = mapped_column(String(320))
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    folder: Mapped[str] = mapped_column(String(200), default="INBOX")
    processed_folder: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    # after commit, \Seen/move done up to here (crash between commit and flag: < last_uid)
    acked_uid: Mapped[int | None] = mapped_column(BigInteger)
    # UIDs up to here predate the poller's first look at this UIDVALIDITY: since-filtered, deduped
    resync_until_uid: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10), default="imap", server_default="imap")
    auth: Mapped[str] = mapped_column(String(10), default="password", server_default="password")
    oauth2_provider: Mapped[str | None] = mapped_column(String(20))
    oauth2_tenant_id: Mapped[str | None] = mapped_column(String(200))
    oauth2_client_id: Mapped[str | None] = mapped_column(String(500))
    oauth2_client_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    oauth2_scope: Mapped[str | None] = mapped_column(String(1000))
    oauth2_grant: Mapped[str | None] = mapped_column(String(30))
    oauth2_refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    oauth2_authority_url: Mapped[str | None] = mapped_column(String(500))
    oauth2_token_url: Mapped[str | None] = mapped_column(String(1000))
    graph_base_url: Mapped[str | None] = mapped_column(String(500))
    # Graph: {folder: deltaLink}, committed with the messages the delta query found
    graph_delta_links: Mapped[dict | None] = mapped_column(JSON)
    # the provider's error of the last failed token request (e.g. "invalid_grant: AADSTS70008 ...");
    # set means health auth_failed; cleared by the next successful login
    auth_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GraphMessage(Base):
    """A Microsoft Graph message a graph mailbox stored: de-duplication by Graph id, and whether it
    was marked read (or moved) after the commit (``acked``); an unacked row is finished later."""

    __tablename__ = "graph_messages"
    __table_args__ = (UniqueConstraint("mailbox_id", "graph_id", name="uq_graph_messages_graph_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True)
    folder: Mapped[str] = mapped_column(String(500))
    graph_id: Mapped[str] = mapped_column(String(500))
    inbound_id: Mapped[int | None] = mapped_column(BigInteger)
    acked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
