"""API tokens: issue (shown once), look up by hash, revoke; the database holds only SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin_api.services.errors import Invalid, NotFound
from admin_api.services.pages import Page, paginate
from models import ROLES, ApiToken, utcnow

TOKEN_PREFIX = "tp_"
ENV_TOKEN_NAME = "TICKETPOST_ADMIN_TOKEN"
# last_used_at is refreshed at most this often, so reads do not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# The token check of every request, built once: SQLAlchemy memoizes a statement object's cache
# key, so a prebuilt statement skips that work per request.
_BY_HASH = select(
    ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.revoked_at, ApiToken.last_used_at
).where(ApiToken.token_hash == bindparam("digest"))


@dataclass(frozen=True)
class TokenIdentity:
    """The holder of a valid token; ``touched`` when its last use was just updated (commit it)."""

    id: int
    name: str
    role: str
    touched: bool = False


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the row and the only copy of the secret there will ever be."""

    token: ApiToken
    secret: str


def hash_token(secret: str) -> str:
    """The SHA-256 hex digest stored for ``secret``."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(session: Session, *, name: str, role: str) -> IssuedToken:
    """Issue a new random token with ``role``; its secret is returned here and nowhere else."""
    name = (name or "").strip()
    if not name:
        raise Invalid("name", "a token needs a name saying who or what uses it")
    if name == ENV_TOKEN_NAME:
        raise Invalid("name", f"{ENV_TOKEN_NAME} is reserved for the token of that variable")
    if role not in ROLES:
        raise Invalid("role", f"role must be one of {', '.join(ROLES)}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, role=role, token_hash=hash_token(secret))
    session.add(token)
    session.flush()
    return IssuedToken(token=token, secret=secret)


def ensure_token(
    session: Session, *, secret: str, role: str = "admin", name: str = ENV_TOKEN_NAME
) -> ApiToken | None:
    """The token of TICKETPOST_ADMIN_TOKEN's value: registered when new, None when revoked.

    - A value never seen before is registered as an admin token named ``name``, and every other
      live token of that name (the previous values of the variable) is revoked with it: changing
      the variable rotates the automation token.
    - A revoked value stays revoked (None): revoking it over the API or CLI retires it for good,
      even while the variable still holds it. Set a new value to get a working token again.

    Call it first in a session: losing a race to create the row rolls the session back.
    """
    digest = hash_token(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None:
        token = ApiToken(name=name, role=role, token_hash=digest)
        session.add(token)
        try:
            session.flush()
        except IntegrityError:  # another process registered it at the same moment
            session.rollback()
            token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        else:
            session.execute(
                update(ApiToken)
                .where(ApiToken.name == name, ApiToken.id != token.id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
    if token is None or token.revoked_at is not None:
        return None
    return token


def authenticate(session: Session, *, secret: str) -> TokenIdentity | None:
    """Who holds this secret (a live token), or None (unknown or revoked); notes when it was used.

    Reads columns, not the ORM entity: this runs on every request. A changed ``last_used_at``
    is left in the session's transaction for the caller to commit.
    """
    if not secret:
        return None
    row = session.execute(_BY_HASH, {"digest": hash_token(secret)}).first()
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        return TokenIdentity(id=row.id, name=row.name, role=row.role, touched=True)
    return TokenIdentity(id=row.id, name=row.name, role=row.role, touched=False)


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two secrets (False when either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def list_tokens(session: Session, *, limit: int = 50, offset: int = 0) -> Page[ApiToken]:
    """Tokens, newest first, without secrets (only hashes are stored anyway)."""
    return paginate(session, select(ApiToken).order_by(ApiToken.id.desc()), limit=limit, offset=offset)


def get_token(session: Session, *, token_id: int) -> ApiToken:
    """The token with this id; raises NotFound."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("token", token_id)
    return token


def revoke_token(session: Session, *, token_id: int) -> ApiToken:
    """Revoke a token: it stops working at once and stays listed with revoked_at (idempotent)."""
    token = get_token(session, token_id=token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token
