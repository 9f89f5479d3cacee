"""OAuth2 access tokens for mailboxes with ``auth: oauth2``: acquire, cache, rotate (SPEC §9).

``access_token(mailbox_id)`` is the one call every user of a mailbox makes (the IMAP poller before
its XOAUTH2 login, the Graph poller before each request, an outbox sending through a Graph
mailbox). A token is cached in the process until shortly before it expires (``EXPIRY_MARGIN_S``,
or half its lifetime when that is shorter), so a poller asks the provider about once an hour,
not once per poll.

Grants (``mailboxes.oauth2_grant``):

* ``client_credentials`` (app-only; microsoft's default, generic): ``client_id`` +
  ``client_secret`` + ``scope``;
* ``refresh_token`` (delegated; google's default): the stored refresh token. When the provider
  answers with a new refresh token (rotation), the new one is encrypted and COMMITTED before the
  access token is handed out: a crash after that point loses nothing, and the old token, which
  the provider may already have revoked, is never needed again. (Three open-source helpdesks lost
  mailboxes after 90 days by keeping the old one.) If the provider refuses a refresh token that
  another process has just rotated, the stored one is read again and tried once more;
* ``service_account`` (google's domain-wide delegation): a JWT signed with the service account's
  key (google-auth's signer) asking for a token on behalf of the mailbox's user.

The token calls are plain OAuth2 (RFC 6749 form POSTs) over httpx. msal was considered for
microsoft: it insists on an ``https`` authority that it discovers through OpenID metadata, and
has no setting for a whole token endpoint, so it can serve neither ``token_url`` (SPEC §9) nor a
test server on loopback; the protocol it would speak here is three form fields.

Errors: a refusal of our credentials (``invalid_grant``, ``invalid_client``,
``unauthorized_client``, AADSTS codes for revoked consent or a disabled app ...) raises
``AuthFailed`` with the provider's code and description: the caller puts the mailbox in health
``auth_failed`` and backs off. Network trouble and 5xx raise ``TokenUnavailable`` (try again).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from core.settings import Settings, get_settings
from models.mailbox import Mailbox
from models.mailbox import default_scope
from models.db import get_engine, session_scope
from models.secrets import SecretKeyMissing, SecretUndecryptable, decrypt_secret, encrypt_secret

log = logging.getLogger(__name__)

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_DEVICE_URL = "https://oauth2.googleapis.com/device/code"
#: A cached token is renewed this long before it expires (or at half its life, if shorter).
EXPIRY_MARGIN_S = 300.0
#: OAuth2 error codes that mean "these credentials are refused" (not "try again later").
REFUSALS = {
    "invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope", "access_denied",
    "consent_required", "interaction_required", "invalid_request", "unsupported_grant_type",
    "expired_token", "authorization_required", "secret_undecryptable",
}
_AADSTS = re.compile(r"\bAADSTS\d+\b")


class AuthFailed(Exception):
    """Raised when the provider refuses the mailbox's credentials (health ``auth_failed``).

    ``code`` is the provider's OAuth2 error (``invalid_grant`` ...), ``detail`` its description
    (for Microsoft starting with the AADSTS code); ``str()`` is both, for the health fields.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        self.code, self.detail = code, detail
        super().__init__(f"{code}: {detail}" if detail else code)


class TokenUnavailable(Exception):
    """Raised when no token could be had for a passing reason (network, provider 5xx, 429)."""


@dataclass(frozen=True)
class OAuth2Config:
    """A mailbox's OAuth2 settings as the token calls need them (a detached snapshot)."""

    mailbox_id: int
    kind: str
    username: str
    provider: str
    tenant_id: str | None
    client_id: str | None
    client_secret_encrypted: bytes | None
    scope: str | None
    grant: str
    authority_url: str | None
    token_url: str | None

    @classmethod
    def of(cls, row: Mailbox) -> "OAuth2Config":
        return cls(
            mailbox_id=row.id,
            kind=row.kind or "imap",
            username=row.username,
            provider=row.oauth2_provider or "generic",
            tenant_id=row.oauth2_tenant_id,
            client_id=row.oauth2_client_id,
            client_secret_encrypted=bytes(row.oauth2_client_secret_encrypted)
            if row.oauth2_client_secret_encrypted else None,
            scope=row.oauth2_scope,
            grant=row.oauth2_grant or "client_credentials",
            authority_url=row.oauth2_authority_url,
            token_url=row.oauth2_token_url,
        )

    @property
    def effective_scope(self) -> str | None:
        return self.scope or default_scope(self.provider, self.kind, self.grant)

    @property
    def token_endpoint(self) -> str:
        """``token_url`` when given; else the provider's token endpoint (tenant, authority)."""
        if self.token_url:
            return self.token_url
        if self.provider == "google":
            return GOOGLE_TOKEN_URL
        authority = (self.authority_url or MICROSOFT_AUTHORITY).rstrip("/")
        return f"{authority}/{self.tenant_id or 'organizations'}/oauth2/v2.0/token"

    @property
    def device_endpoint(self) -> str:
        """Where the device-code flow starts: beside the token endpoint (``.../devicecode``)."""
        if self.provider == "google" and not self.token_url:
            return GOOGLE_DEVICE_URL
        endpoint = self.token_endpoint
        return (endpoint[: -len("/token")] if endpoint.endswith("/token") else endpoint) + "/devicecode"


@dataclass
class _Cached:
    fingerprint: tuple
    token: str
    renew_at: float


class TokenProvider:
    """Gets, caches and renews access tokens for mailboxes; one per process is enough."""

    def __init__(self, *, engine: Engine, settings: Settings, http: httpx.Client | None = None):
        self.engine = engine
        self.settings = settings
        self.http = http or httpx.Client(timeout=settings.oauth2_timeout_s)
        self.requests = 0  # token requests sent (for tests and the benchmark)
        self._cache: dict[int, _Cached] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def access_token(self, mailbox_id: int, *, refresh: bool = False) -> str:
        """A valid access token for the mailbox; ``refresh`` drops the cached one first (after a
        server refused it). Raises AuthFailed or TokenUnavailable."""
        with self._lock(mailbox_id):
            config = self._config(mailbox_id)
            fingerprint = (config.client_id, config.client_secret_encrypted, config.grant,
                           config.effective_scope, config.token_endpoint, config.username)
            cached = self._cache.get(mailbox_id)
            if refresh:
                self._cache.pop(mailbox_id, None)
            elif cached and cached.fingerprint == fingerprint and time.monotonic() < cached.renew_at:
                return cached.token
            token, lifetime = self._request(config)
            margin = min(EXPIRY_MARGIN_S, lifetime / 2)
            self._cache[mailbox_id] = _Cached(fingerprint, token, time.monotonic() + lifetime - margin)
            return token

    def forget(self, mailbox_id: int) -> None:
        """Drop the cached token of a mailbox (its settings changed, or a server refused it)."""
        self._cache.pop(mailbox_id, None)

    # --- steps ---------------------------------------------------------------------------------

    def _lock(self, mailbox_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(mailbox_id, threading.Lock())

    def _config(self, mailbox_id: int) -> OAuth2Config:
        with session_scope(self.engine) as session:
            row = session.get(Mailbox, mailbox_id)
            if row is None:
                raise AuthFailed("mailbox_gone", f"mailbox id {mailbox_id} no longer exists")
            if row.auth != "oauth2":
                raise AuthFailed("not_oauth2", "the mailbox does not log in with OAuth2")
            return OAuth2Config.of(row)

    def _secret(self, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        try:
            return decrypt_secret(blob, key=self.settings.secret_key)
        except (SecretKeyMissing, SecretUndecryptable) as exc:
            raise AuthFailed("secret_undecryptable", str(exc)) from None

    def _request(self, config: OAuth2Config) -> tuple[str, float]:
        if config.grant == "refresh_token":
            return self._refresh(config)
        if config.grant == "service_account":
            form = self._service_account_form(config)
        else:
            form = {"grant_type": "client_credentials", "client_id": config.client_id or "",
                    "client_secret": self._secret(config.client_secret_encrypted) or ""}
            if config.effective_scope:
                form["scope"] = config.effective_scope
        answer = self._post(config.token_endpoint, form)
        return answer["access_token"], _lifetime(answer)

    def _refresh(self, config: OAuth2Config) -> tuple[str, float]:
        """The refresh-token grant, storing a rotated refresh token before anything else."""
        for attempt in (1, 2):
            blob = self._stored_refresh_token(config.mailbox_id)
            current = self._secret(blob)
            if not current:
                raise AuthFailed(
                    "authorization_required",
                    f"no refresh token stored: run `ticketpost mailbox authorize {config.mailbox_id}`",
                )
            form = {"grant_type": "refresh_token", "refresh_token": current,
                    "client_id": config.client_id or ""}
            secret = self._secret(config.client_secret_encrypted)
            if secret:
                form["client_secret"] = secret
            if config.effective_scope and config.provider != "google":
                form["scope"] = config.effective_scope
            try:
                answer = self._post(config.token_endpoint, form)
            except AuthFailed as exc:
                # another process may have rotated it a moment ago: read it again, once
                if exc.code == "invalid_grant" and attempt == 1 \
                        and self._stored_refresh_token(config.mailbox_id) != blob:
                    continue
                raise
            rotated = answer.get("refresh_token")
            if rotated and rotated != current:
                self._store_rotated(config.mailbox_id, rotated)
            return answer["access_token"], _lifetime(answer)
        raise AssertionError("unreachable")

    def _stored_refresh_token(self, mailbox_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            blob = conn.execute(
                select(Mailbox.oauth2_refresh_token_encrypted).where(Mailbox.id == mailbox_id)
            ).scalar()
        return bytes(blob) if blob else None

    def _store_rotated(self, mailbox_id: int, refresh_token: str) -> None:
        """COMMIT the rotated refresh token (encrypted); only then is the access token used."""
        blob = encrypt_secret(refresh_token, key=self.settings.secret_key)
        with session_scope(self.engine) as session:
            session.execute(
                update(Mailbox).where(Mailbox.id == mailbox_id)
                .values(oauth2_refresh_token_encrypted=blob)
            )
        log.info("rotated refresh token stored", extra={"mailbox_id": mailbox_id})

    def _service_account_form(self, config: OAuth2Config) -> dict[str, str]:
        """A JWT-bearer assertion (RFC 7523) signed with the service account key, for the user."""
        from google.auth import crypt, jwt

        try:
            info = json.loads(self._secret(config.client_secret_encrypted) or "")
            signer = crypt.RSASigner.from_service_account_info(info)
        except (ValueError, KeyError) as exc:
            raise AuthFailed("invalid_client", f"the service account key is unusable: {exc}") from None
        now = int(time.time())
        payload = {
            "iss": info["client_email"], "sub": config.username,
            "scope": config.effective_scope or "https://mail.google.com/",
            "aud": config.token_endpoint, "iat": now, "exp": now + 3600,
        }
        assertion = jwt.encode(signer, payload)
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion.decode() if isinstance(assertion, bytes) else assertion}

    def _post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        self.requests += 1
        try:
            response = self.http.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TokenUnavailable(f"token endpoint {url} unreachable: {exc}") from None
        return token_answer(response)


def token_answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a token endpoint's answer; raises AuthFailed (refused) or TokenUnavailable."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 200 and body.get("access_token"):
        return body
    code = str(body.get("error") or "")
    detail = str(body.get("error_description") or "").strip().splitlines()[0:1]
    detail = detail[0] if detail else ""
    if not _AADSTS.search(detail) and body.get("error_codes"):
        detail = f"AADSTS{body['error_codes'][0]}: {detail}".rstrip(": ")
    if response.status_code in (400, 401, 403) and (code in REFUSALS or _AADSTS.search(detail)):
        raise AuthFailed(code or "refused", detail)
    if response.status_code == 200:
        raise TokenUnavailable("the token endpoint answered without an access_token")
    raise TokenUnavailable(
        f"token endpoint answered {response.status_code} {code} {detail}".strip()
    )


def _lifetime(answer: dict[str, Any]) -> float:
    try:
        return max(1.0, float(answer.get("expires_in") or 3600))
    except (TypeError, ValueError):
        return 3600.0


# --- the process-wide provider (what other modules call) ------------------------------------------

_providers: dict[str, TokenProvider] = {}
_providers_guard = threading.Lock()


def token_provider(*, engine: Engine | None = None, settings: Settings | None = None) -> TokenProvider:
    """The process's ``TokenProvider`` for this database (one cache shared by every poller)."""
    settings = settings or get_settings()
    engine = engine or get_engine(settings.database_url)
    key = f"{engine.url.render_as_string(hide_password=False)}|{id(settings)}"
    with _providers_guard:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = TokenProvider(engine=engine, settings=settings)
        return provider


def access_token(
    mailbox_id: int, *, engine: Engine | None = None, settings: Settings | None = None,
    refresh: bool = False,
) -> str:
    """A valid access token for the mailbox (cached; rotated refresh tokens stored first).

    For anything that talks to a provider as the mailbox: the pollers, and sending through a
    Graph mailbox (``graph://MAILBOX_ID``). Raises AuthFailed or TokenUnavailable.
    """
    return token_provider(engine=engine, settings=settings).access_token(mailbox_id, refresh=refresh)


# --- device-code flow (``ticketpost mailbox authorize``) -----------------------------------------


@dataclass
class DeviceCode:
    """What the person must do: open ``verification_uri`` and type ``user_code``."""

    device_code: str
    user_code: str
    verification_uri: str
    interval: float
    expires_in: float
    message: str | None = None


def start_device_flow(config: OAuth2Config, *, settings: Settings,
                      http: httpx.Client | None = None) -> DeviceCode:
    """Ask the provider for a device code (RFC 8628) for the mailbox's delegated scope."""
    http = http or httpx.Client(timeout=settings.oauth2_timeout_s)
    scope = config.scope or default_scope(config.provider, config.kind, "refresh_token") or ""
    if "offline_access" not in scope and config.provider != "google":
        scope = f"{scope} offline_access".strip()
    form = {"client_id": config.client_id or "", "scope": scope}
    try:
        response = http.post(config.device_endpoint, data=form)
    except httpx.HTTPError as exc:
        raise TokenUnavailable(f"device endpoint {config.device_endpoint} unreachable: {exc}") from None
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200 or "device_code" not in body:
        raise AuthFailed(str(body.get("error") or response.status_code),
                         str(body.get("error_description") or response.text[:200]))
    return DeviceCode(
        device_code=body["device_code"], user_code=body["user_code"],
        verification_uri=body.get("verification_uri") or body.get("verification_url") or "",
        interval=float(body.get("interval") or 5), expires_in=float(body.get("expires_in") or 900),
        message=body.get("message"),
    )


def poll_device_flow(config: OAuth2Config, code: DeviceCode, *, settings: Settings,
                     secret_key: str | None, http: httpx.Client | None = None,
                     sleep=time.sleep) -> str:
    """Poll the token endpoint until the person has consented; return the refresh token.

    ``authorization_pending`` waits ``interval``; ``slow_down`` adds 5 s (RFC 8628 §3.5).
    Raises AuthFailed when refused or expired.
    """
    http = http or httpx.Client(timeout=settings.oauth2_timeout_s)
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": code.device_code, "client_id": config.client_id or ""}
    if config.client_secret_encrypted:
        form["client_secret"] = decrypt_secret(config.client_secret_encrypted, key=secret_key)
    interval = code.interval
    deadline = time.monotonic() + code.expires_in
    while time.monotonic() < deadline:
        sleep(interval)
        response = http.post(config.token_endpoint, data=form)
        body = response.json() if response.content else {}
        error = body.get("error") if isinstance(body, dict) else None
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        answer = token_answer(response)
        if not answer.get("refresh_token"):
            raise AuthFailed("no_refresh_token", "the provider gave no refresh token "
                             "(is offline_access in the scope?)")
        return answer["refresh_token"]
    raise AuthFailed("expired_token", "the device code expired before consent was given")
