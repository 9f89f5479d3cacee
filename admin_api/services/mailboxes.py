"""IMAP mailboxes we poll: create, change, list and remove them (the password is write-only).

Decisions:
- A new mailbox starts with mail arriving after it is added: ``since`` defaults to now. Pass an
  earlier ``since`` to take in older mail too. The checkpoint (``uidvalidity``, ``last_uid``) stays
  null; the IMAP poller fills it.
- Changing host, port, username or folder points the mailbox at another message store, so the
  checkpoint is reset (and ``since`` moves to now unless given in the same change).
- The password is encrypted with TICKETPOST_SECRET_KEY (models.secrets) and never returned.
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
from models import Mailbox, utcnow
from models.secrets import encrypt_secret

SECURITY_MODES = ("ssl", "starttls", "none")
DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
_CHECKPOINT_FIELDS = ("host", "port", "username", "folder")
# The poller's checkpoint of a mailbox; reset when the mailbox points at another message store.
_CHECKPOINT_COLUMNS = ("uidvalidity", "last_uid", "acked_uid", "resync_until_uid")
_UPDATABLE = (
    "name", "host", "port", "security", "username", "password", "folder", "processed_folder",
    "enabled", "since",
)


def default_port(security: str) -> int:
    """The IMAP port a mailbox uses when it gives none: 993 for ssl, else 143."""
    return DEFAULT_PORTS.get(security, 993)


def create_mailbox(
    session: Session,
    *,
    name: str,
    host: str,
    port: int | None = None,
    security: str = "ssl",
    username: str,
    password: str,
    folder: str = "INBOX",
    processed_folder: str | None = None,
    enabled: bool = True,
    since: datetime | None = None,
    secret_key: str | None,
) -> Mailbox:
    """Add a mailbox; raises Invalid, Conflict (name taken) or models.secrets.SecretKeyMissing."""
    values = _validated(
        {
            "name": name, "host": host, "port": port, "security": security,
            "username": username, "folder": folder, "processed_folder": processed_folder,
            "enabled": enabled, "since": since,
        }
    )
    if password is None or password == "":
        raise Invalid("password", "a password is required")
    _ensure_name_free(session, values["name"])
    mailbox = Mailbox(
        **values,
        password_encrypted=encrypt_secret(password, key=secret_key),
        consecutive_failures=0,
    )
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
    """Apply ``changes`` (only the keys given); a new password is encrypted, never stored plain."""
    mailbox = get_mailbox(session, mailbox_id=mailbox_id)
    changes = checked_fields(changes, allowed=_UPDATABLE, what="a mailbox that can be changed")
    password = changes.pop("password", None)
    values = _validated(changes, partial=True)
    if "name" in values and values["name"] != mailbox.name:
        _ensure_name_free(session, values["name"], exclude_id=mailbox.id)
    moved = any(k in values and values[k] != getattr(mailbox, k) for k in _CHECKPOINT_FIELDS)
    for key, value in values.items():
        setattr(mailbox, key, value)
    if password is not None:
        if password == "":
            raise Invalid("password", "the password cannot be empty")
        mailbox.password_encrypted = encrypt_secret(password, key=secret_key)
    if moved:
        for column in _CHECKPOINT_COLUMNS:
            if hasattr(mailbox, column):
                setattr(mailbox, column, None)
        if "since" not in values:
            mailbox.since = utcnow()
    if password is not None or moved or values.get("enabled") is True:
        mailbox.consecutive_failures = 0
    mailbox.updated_at = utcnow()
    _flush(session, mailbox.name)
    return mailbox


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
    """One word for a mailbox's state: disabled, never_polled, failing or ok."""
    if not mailbox.enabled:
        return "disabled"
    if (mailbox.consecutive_failures or 0) > 0 or (
        mailbox.last_error_at is not None
        and (mailbox.last_success_at is None or mailbox.last_error_at > mailbox.last_success_at)
    ):
        return "failing"
    if mailbox.last_success_at is None:
        return "never_polled"
    return "ok"
