"""Mailboxes we poll (IMAP or Microsoft Graph): create, change, list and remove them.

Every secret (password, OAuth2 client secret, refresh token) is write-only: encrypted with
TICKETPOST_SECRET_KEY (models.secrets) and never returned.

Decisions:
- A new mailbox starts with mail arriving after it is added: ``since`` defaults to now. Pass an
  earlier ``since`` to take in older mail too. The checkpoint (``uidvalidity``, ``last_uid``) stays
  null; the IMAP poller fills it.
- Changing host, port, username or folder points the mailbox at another message store, so the
  checkpoint is reset (and ``since`` moves to now unless given in the same change).
- ``kind: graph`` needs ``auth: oauth2`` with provider ``microsoft`` (or ``generic``, for
  a Graph-compatible endpoint); its ``user`` is kept in ``username`` and its host is the Graph
  host (from ``graph_base_url``, default ``https://graph.microsoft.com``).
- ``oauth2.grant`` defaults to ``client_credentials`` (microsoft, generic) or ``refresh_token``
  (google). Google's domain-wide delegation is grant ``service_account`` with the service
  account's JSON key as ``client_secret``. A ``refresh_token`` grant may be created without a
  refresh token: ``ticketpost mailbox authorize ID`` obtains one (device code).
- ``oauth2.scope`` left out means the provider default for the kind (``default_scope``); the
  JSON shows the scope in effect.
- Changing credentials (password, oauth2) clears ``auth_error``; the poller retries at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin_api.services.errors import Conflict, Invalid, NotFound, checked_fields
from admin_api.services.pages import Page, paginate
from models import MAILBOX_AUTHS, MAILBOX_KINDS, OAUTH2_GRANTS, OAUTH2_PROVIDERS, Mailbox, utcnow
from models.mailbox import GRAPH_BASE_URL, default_grant, default_scope
from models.secrets import encrypt_secret

SECURITY_MODES = ("ssl", "starttls", "none")
DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
_CHECKPOINT_FIELDS = ("host", "port", "username", "folder")
# The poller's checkpoint of a mailbox; reset when the mailbox points at another message store.
_CHECKPOINT_COLUMNS = ("uidvalidity", "last_uid", "acked_uid", "resync_until_uid")
_UPDATABLE = (
    "name", "host", "port", "security", "username", "password", "folder", "processed_folder",
    "enabled", "since", "kind", "auth", "oauth2", "user", "graph_base_url",
)
_OAUTH2_FIELDS = (
    "provider", "tenant_id", "client_id", "client_secret", "scope", "grant", "refresh_token",
    "authority_url", "token_url",
)
_OAUTH2_SECRETS = ("client_secret", "refresh_token")


def default_port(security: str) -> int:
    """The IMAP port a mailbox uses when it gives none: 993 for ssl, else 143."""
    return DEFAULT_PORTS.get(security, 993)


def create_mailbox(
    session: Session,
    *,
    name: str,
    host: str | None = None,
    port: int | None = None,
    security: str = "ssl",
    username: str | None = None,
    password: str | None = None,
    folder: str = "INBOX",
    processed_folder: str | None = None,
    enabled: bool = True,
    since: datetime | None = None,
    kind: str = "imap",
    auth: str | None = None,
    oauth2: Mapping[str, Any] | None = None,
    user: str | None = None,
    graph_base_url: str | None = None,
    secret_key: str | None,
) -> Mailbox:
    """Add a mailbox; raises Invalid, Conflict (name taken) or models.secrets.SecretKeyMissing."""
    if kind not in MAILBOX_KINDS:
        raise Invalid("kind", f"kind must be one of {', '.join(MAILBOX_KINDS)}")
    auth = auth or ("oauth2" if kind == "graph" or oauth2 is not None else "password")
    values: dict[str, Any] = {"kind": kind, "auth": auth}
    if kind == "graph":
        base = _graph_base_url(graph_base_url)
        values.update(graph_base_url=graph_base_url and base, host=_host_of(base))
        if not (user or username):
            raise Invalid("user", "a graph mailbox needs the user (UPN or id) whose mail it reads")
        username = user or username
    values.update(
        _validated(
            {
                "name": name, "host": values.get("host", host), "port": port,
                "security": security, "username": username, "folder": folder,
                "processed_folder": processed_folder, "enabled": enabled, "since": since,
            }
        )
    )
    mailbox = Mailbox(**values, consecutive_failures=0)
    _apply_credentials(mailbox, password=password, oauth2=oauth2, replace=True,
                       secret_key=secret_key)
    _ensure_name_free(session, values["name"])
    if mailbox.since is None:
        mailbox.since = utcnow()
    session.add(mailbox)
    _flush(session, values["name"])
    return mailbox


def update_mailbox(
    session: Session,
    *,
    mailbox_id: int,
    changes: Mapping[str, Any],
    secret_key: str | None = None,
) -> Mailbox:
    """Apply ``changes`` (only the keys given); secrets are encrypted, never stored plain.

    ``oauth2`` given as an object changes the fields it names (secrets left out are kept); null
    removes the OAuth2 settings (with ``auth: password``).
    """
    mailbox = get_mailbox(session, mailbox_id=mailbox_id)
    changes = checked_fields(changes, allowed=_UPDATABLE, what="a mailbox that can be changed")
    password = changes.pop("password", None)
    oauth2_given = "oauth2" in changes
    oauth2 = changes.pop("oauth2", None)
    kind = changes.pop("kind", None) or mailbox.kind
    if kind not in MAILBOX_KINDS:
        raise Invalid("kind", f"kind must be one of {', '.join(MAILBOX_KINDS)}")
    if kind != mailbox.kind:
        raise Invalid("kind", "the kind of a mailbox cannot change: add a new mailbox instead")
    auth = changes.pop("auth", None)
    user = changes.pop("user", None)
    if user is not None:
        if kind != "graph":
            raise Invalid("user", "user is for graph mailboxes; IMAP mailboxes have a username")
        changes["username"] = user
    if "graph_base_url" in changes:
        if kind != "graph":
            raise Invalid("graph_base_url", "graph_base_url is for graph mailboxes")
        base = _graph_base_url(changes["graph_base_url"])
        mailbox.graph_base_url = changes.pop("graph_base_url") and base
        changes["host"] = _host_of(base)
    values = _validated(changes, partial=True)
    if "name" in values and values["name"] != mailbox.name:
        _ensure_name_free(session, values["name"], exclude_id=mailbox.id)
    moved = any(k in values and values[k] != getattr(mailbox, k) for k in _CHECKPOINT_FIELDS)
    for key, value in values.items():
        setattr(mailbox, key, value)
    credentials = password is not None or oauth2_given or auth is not None
    if auth is not None:
        if auth not in MAILBOX_AUTHS:
            raise Invalid("auth", f"auth must be one of {', '.join(MAILBOX_AUTHS)}")
        mailbox.auth = auth
    if credentials:
        _apply_credentials(mailbox, password=password, oauth2=oauth2,
                           replace=oauth2_given and oauth2 is None, secret_key=secret_key,
                           partial=True)
        mailbox.auth_error = None
    if moved:
        for column in _CHECKPOINT_COLUMNS:
            if hasattr(mailbox, column):
                setattr(mailbox, column, None)
        mailbox.graph_delta_links = None
        if "since" not in values:
            mailbox.since = utcnow()
    if credentials or moved or values.get("enabled") is True:
        mailbox.consecutive_failures = 0
    mailbox.updated_at = utcnow()
    _flush(session, mailbox.name)
    return mailbox


def store_refresh_token(
    session: Session, *, mailbox_id: int, refresh_token: str, secret_key: str | None
) -> Mailbox:
    """Store a refresh token (``ticketpost mailbox authorize``) encrypted; clears ``auth_error``."""
    mailbox = get_mailbox(session, mailbox_id=mailbox_id)
    if mailbox.auth != "oauth2":
        raise Invalid("auth", "the mailbox does not log in with OAuth2")
    mailbox.oauth2_refresh_token_encrypted = encrypt_secret(refresh_token, key=secret_key)
    mailbox.oauth2_grant = "refresh_token"
    mailbox.auth_error = None
    mailbox.consecutive_failures = 0
    mailbox.updated_at = utcnow()
    session.flush()
    return mailbox


def oauth2_view(mailbox: Mailbox) -> dict[str, Any] | None:
    """The ``oauth2`` object of the mailbox JSON: settings, the scope in effect, never a secret."""
    if mailbox.auth != "oauth2":
        return None
    return {
        "provider": mailbox.oauth2_provider,
        "tenant_id": mailbox.oauth2_tenant_id,
        "client_id": mailbox.oauth2_client_id,
        "has_client_secret": mailbox.oauth2_client_secret_encrypted is not None,
        "scope": mailbox.oauth2_scope
        or default_scope(mailbox.oauth2_provider, mailbox.kind, mailbox.oauth2_grant),
        "grant": mailbox.oauth2_grant,
        "has_refresh_token": mailbox.oauth2_refresh_token_encrypted is not None,
        "authority_url": mailbox.oauth2_authority_url,
        "token_url": mailbox.oauth2_token_url,
    }


def delete_mailbox(session: Session, *, mailbox_id: int | None = None, name: str | None = None) -> None:
    """Remove a mailbox (by id or name); mail already taken in stays."""
    session.delete(get_mailbox(session, mailbox_id=mailbox_id, name=name))
    session.flush()


def get_mailbox(session: Session, *, mailbox_id: int | None = None, name: str | None = None) -> Mailbox:
    """The mailbox with this id (or name); raises NotFound."""
    if mailbox_id is not None:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise NotFound("mailbox", mailbox_id)
        return mailbox
    if name is not None:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.name == name))
        if mailbox is None:
            raise NotFound("mailbox", name, field="name")
        return mailbox
    raise Invalid("mailbox_id", "give a mailbox id or name")


def list_mailboxes(session: Session, *, limit: int = 50, offset: int = 0) -> Page[Mailbox]:
    """Mailboxes by name, one page."""
    return paginate(session, select(Mailbox).order_by(Mailbox.name, Mailbox.id), limit=limit, offset=offset)


# --- steps ---------------------------------------------------------------------------------------


def _validated(values: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("name", "host", "username", "folder"):
            text = value.strip() if isinstance(value, str) else value
            if not text:
                raise Invalid(key, f"{key} is required and cannot be empty")
            if key == "host" and any(ch.isspace() for ch in text):
                raise Invalid(key, "host must be a hostname or IP address without spaces")
            out[key] = text
        elif key == "processed_folder":
            out[key] = (value.strip() or None) if isinstance(value, str) else None
        elif key == "security":
            if value not in SECURITY_MODES:
                raise Invalid(key, f"security must be one of {', '.join(SECURITY_MODES)}")
            out[key] = value
        elif key == "port":
            if value is not None and not (isinstance(value, int) and 1 <= value <= 65535):
                raise Invalid(key, "port must be between 1 and 65535")
            out[key] = value
        elif key == "enabled":
            if value is None and partial:
                raise Invalid(key, "enabled must be true or false")
            out[key] = bool(value)
        elif key == "since":
            if value is not None and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            out[key] = value
        else:
            out[key] = value
    if not partial:
        out.setdefault("folder", "INBOX")
    return out


def _apply_credentials(
    mailbox: Mailbox,
    *,
    password: str | None,
    oauth2: Mapping[str, Any] | None,
    replace: bool,
    secret_key: str | None,
    partial: bool = False,
) -> None:
    """Check the credentials fit ``mailbox.kind`` / ``auth`` and store them (secrets encrypted)."""
    if mailbox.auth not in MAILBOX_AUTHS:
        raise Invalid("auth", f"auth must be one of {', '.join(MAILBOX_AUTHS)}")
    if mailbox.kind == "graph" and mailbox.auth != "oauth2":
        raise Invalid("auth", "a graph mailbox logs in with auth oauth2")
    if mailbox.auth == "password":
        if oauth2 is not None:
            raise Invalid("oauth2", "oauth2 settings need auth oauth2")
        if password == "":
            raise Invalid("password", "the password cannot be empty")
        if password is not None:
            mailbox.password_encrypted = encrypt_secret(password, key=secret_key)
        elif mailbox.password_encrypted is None:
            raise Invalid("password", "a password is required (or auth oauth2)")
        _clear_oauth2(mailbox)
        return
    if password is not None:
        raise Invalid("password", "a mailbox with auth oauth2 has no password; leave it out")
    mailbox.password_encrypted = None
    if replace and not partial:
        _clear_oauth2(mailbox)
    if oauth2 is None:
        if mailbox.oauth2_provider is None:
            raise Invalid("oauth2", "auth oauth2 needs the oauth2 settings (provider, client_id ...)")
        return
    unknown = set(oauth2) - set(_OAUTH2_FIELDS)
    if unknown:
        raise Invalid(("oauth2", min(unknown)), "is not a field of oauth2")
    current = {f: getattr(mailbox, f"oauth2_{f}") for f in _OAUTH2_FIELDS if f not in _OAUTH2_SECRETS}
    merged = {**current, **{k: v for k, v in oauth2.items() if k not in _OAUTH2_SECRETS}}
    merged = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in merged.items()}
    provider = merged.get("provider")
    if provider not in OAUTH2_PROVIDERS:
        raise Invalid(("oauth2", "provider"), f"provider must be one of {', '.join(OAUTH2_PROVIDERS)}")
    if mailbox.kind == "graph" and provider == "google":
        raise Invalid(("oauth2", "provider"), "a graph mailbox uses provider microsoft (or generic)")
    grant = merged.get("grant") or default_grant(provider)
    if grant not in OAUTH2_GRANTS:
        raise Invalid(("oauth2", "grant"), f"grant must be one of {', '.join(OAUTH2_GRANTS)}")
    if provider == "google" and grant == "client_credentials":
        raise Invalid(("oauth2", "grant"), "google has no client_credentials grant for mail: use "
                      "refresh_token (delegated) or service_account (domain-wide delegation)")
    if grant == "service_account" and provider != "google":
        raise Invalid(("oauth2", "grant"), "grant service_account is Google's domain-wide delegation")
    for key in ("authority_url", "token_url"):
        if merged.get(key) and not str(merged[key]).startswith(("https://", "http://")):
            raise Invalid(("oauth2", key), f"{key} must be an http(s) URL")
    if provider == "generic" and not merged.get("token_url"):
        raise Invalid(("oauth2", "token_url"), "the generic provider needs token_url")
    if provider == "microsoft" and not merged.get("tenant_id") and not merged.get("token_url"):
        raise Invalid(("oauth2", "tenant_id"), "microsoft needs the tenant_id (directory id or domain)")
    if grant != "service_account" and not merged.get("client_id"):
        raise Invalid(("oauth2", "client_id"), "client_id (the application id) is required")
    for key, value in merged.items():
        setattr(mailbox, f"oauth2_{key}", value)
    mailbox.oauth2_grant = grant
    secret = oauth2.get("client_secret")
    if secret is not None:
        if secret == "":
            raise Invalid(("oauth2", "client_secret"), "the client secret cannot be empty")
        if grant == "service_account":
            _check_service_account_key(secret)
        mailbox.oauth2_client_secret_encrypted = encrypt_secret(secret, key=secret_key)
    refresh = oauth2.get("refresh_token")
    if refresh is not None:
        if refresh == "":
            raise Invalid(("oauth2", "refresh_token"), "the refresh token cannot be empty")
        mailbox.oauth2_refresh_token_encrypted = encrypt_secret(refresh, key=secret_key)
    if grant in ("client_credentials", "service_account") \
            and mailbox.oauth2_client_secret_encrypted is None:
        what = "the service account's JSON key" if grant == "service_account" else "client_secret"
        raise Invalid(("oauth2", "client_secret"), f"grant {grant} needs {what}")


def _check_service_account_key(secret: str) -> None:
    import json

    try:
        key = json.loads(secret)
    except ValueError:
        key = None
    if not isinstance(key, dict) or not key.get("client_email") or not key.get("private_key"):
        raise Invalid(("oauth2", "client_secret"), "grant service_account needs the service "
                      "account's JSON key file (with client_email and private_key) as client_secret")


def _clear_oauth2(mailbox: Mailbox) -> None:
    for field in _OAUTH2_FIELDS:
        column = f"oauth2_{field}_encrypted" if field in _OAUTH2_SECRETS else f"oauth2_{field}"
        setattr(mailbox, column, None)


def _graph_base_url(value: str | None) -> str:
    base = (value or GRAPH_BASE_URL).strip().rstrip("/")
    if not base.startswith(("https://", "http://")) or any(ch.isspace() for ch in base):
        raise Invalid("graph_base_url", "graph_base_url must be an http(s) URL such as "
                      "https://graph.microsoft.com (the host, without /v1.0)")
    if base.endswith(("/v1.0", "/beta")):
        raise Invalid("graph_base_url", "give the host without /v1.0")
    return base


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def _ensure_name_free(session: Session, name: str, *, exclude_id: int | None = None) -> None:
    query = select(Mailbox.id).where(func.lower(Mailbox.name) == name.lower())
    if exclude_id is not None:
        query = query.where(Mailbox.id != exclude_id)
    other = session.scalar(query)
    if other is not None:
        raise Conflict(f"a mailbox named {name!r} already exists (id {other})")


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"a mailbox named {name!r} already exists") from None


def mailbox_health(mailbox: Mailbox) -> str:
    """One word for a mailbox's state: disabled, auth_failed, failing, never_polled or ok."""
    if not mailbox.enabled:
        return "disabled"
    if mailbox.auth_error:
        return "auth_failed"
    if (mailbox.consecutive_failures or 0) > 0 or (
        mailbox.last_error_at is not None
        and (mailbox.last_success_at is None or mailbox.last_error_at > mailbox.last_success_at)
    ):
        return "failing"
    if mailbox.last_success_at is None:
        return "never_polled"
    return "ok"
