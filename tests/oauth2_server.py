"""A local OAuth2 authorization server for tests: token, device code and introspection endpoints.

It speaks the documented protocol (RFC 6749 form POSTs answered with JSON, RFC 8628 device codes,
RFC 7662 introspection, RFC 7523 JWT-bearer assertions) on 127.0.0.1, in a thread of the test:

* ``POST /TENANT/oauth2/v2.0/token`` (any path ending in ``/token``): ``client_credentials``
  (registered client id + secret), ``refresh_token`` **with rotation** — every use issues a new
  refresh token and the old one stops working (``invalid_grant``), ``device_code``, and
  ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (a service account's signed assertion; ``sub``
  names the user);
* ``POST .../devicecode``: a device and user code, approved by the test (``approve``);
* ``POST /introspect``: what Dovecot's ``oauth2`` passdb asks (``{"active": true, "username"}``).

Errors look like Microsoft's (``error``, ``error_description`` starting with an AADSTS code,
``error_codes``). ``revoke(user)`` makes that user's refresh tokens ``invalid_grant``
(revoked consent); ``disable(client_id)`` answers ``unauthorized_client`` (disabled app).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from bench import loopback_http


@dataclass
class Grant:
    """Who an access or refresh token stands for."""

    user: str
    client_id: str
    scope: str


@dataclass
class TokenServer:
    """The server's state; ``start()`` serves it on a free loopback port."""

    clients: dict[str, str] = field(default_factory=dict)  # client_id → secret
    access_lifetime: int = 3600
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    devices: dict[str, dict] = field(default_factory=dict)
    revoked_users: set[str] = field(default_factory=set)
    disabled_clients: set[str] = field(default_factory=set)
    service_accounts: dict[str, object] = field(default_factory=dict)  # client_email → public key
    app_user: str | None = None  # whose mailbox an app-only token may open (IMAP.AccessAsApp)
    requests: dict[str, int] = field(default_factory=dict)
    issued_with: dict[str, str] = field(default_factory=dict)  # access token → its refresh token
    on_introspect: object = None  # called with the access token a resource server asks about
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    # --- set-up by the test ------------------------------------------------------------------

    def register(self, client_id: str, secret: str) -> None:
        self.clients[client_id] = secret

    def issue_refresh_token(self, user: str, client_id: str, scope: str = "") -> str:
        token = "rt-" + secrets.token_urlsafe(16)
        with self.lock:
            self.refresh[token] = Grant(user, client_id, scope)
        return token

    def revoke(self, user: str) -> None:
        with self.lock:
            self.revoked_users.add(user)

    def restore(self, user: str) -> None:
        with self.lock:
            self.revoked_users.discard(user)

    def disable(self, client_id: str) -> None:
        self.disabled_clients.add(client_id)

    def enable(self, client_id: str) -> None:
        self.disabled_clients.discard(client_id)

    def approve(self, user_code: str, user: str) -> None:
        with self.lock:
            for device in self.devices.values():
                if device["user_code"] == user_code:
                    device["user"] = user

    def count(self, grant: str) -> int:
        return self.requests.get(grant, 0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token_url(self, tenant: str = "tenant-1") -> str:
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> "TokenServer":
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = state.handle(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = loopback_http.serve(Handler, self.port)
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        loopback_http.close(self._server)
        self._server = None

    # --- the endpoints ---------------------------------------------------------------------------

    def handle(self, path: str, form: dict) -> tuple[int, dict]:
        if path.endswith("/introspect"):
            if self.on_introspect is not None:
                self.on_introspect(form.get("token", ""))
            grant = self.access.get(form.get("token", ""))
            if grant is None:
                return 200, {"active": False}
            return 200, {"active": True, "username": grant.user, "scope": grant.scope}
        if path.endswith("/devicecode"):
            code = "dc-" + secrets.token_urlsafe(8)
            user_code = secrets.token_hex(4).upper()
            with self.lock:
                self.devices[code] = {"user_code": user_code, "user": None,
                                      "client_id": form.get("client_id"), "scope": form.get("scope", "")}
            return 200, {"device_code": code, "user_code": user_code, "interval": 0.05,
                         "verification_uri": f"{self.url}/devicelogin", "expires_in": 60,
                         "message": f"To sign in, open {self.url}/devicelogin and enter {user_code}"}
        if path.endswith("/token"):
            grant_type = form.get("grant_type", "")
            with self.lock:
                self.requests[grant_type] = self.requests.get(grant_type, 0) + 1
                self.requests["total"] = self.requests.get("total", 0) + 1
            return self._token(grant_type, form)
        return 404, {"error": "not_found"}

    def _token(self, grant_type: str, form: dict) -> tuple[int, dict]:
        client_id = form.get("client_id", "")
        if client_id in self.disabled_clients:
            return _error(400, "unauthorized_client", 7000112, "Application is disabled.")
        if grant_type == "client_credentials":
            if self.clients.get(client_id) != form.get("client_secret"):
                return _error(401, "invalid_client", 7000215, "Invalid client secret provided.")
            return 200, self._issue(Grant(self.app_user or "", client_id, form.get("scope", "")),
                                    refresh=False)
        if grant_type == "refresh_token":
            with self.lock:
                grant = self.refresh.pop(form.get("refresh_token", ""), None)  # rotation: one use
                if grant is not None and grant.user in self.revoked_users:
                    self.refresh[form["refresh_token"]] = grant
                    return _error(400, "invalid_grant", 50173,
                                  "The provided grant has expired due to it being revoked.")
            if grant is None:
                return _error(400, "invalid_grant", 70008,
                              "The provided authorization code or refresh token has expired.")
            return 200, self._issue(grant, refresh=True)
        if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
            device = self.devices.get(form.get("device_code", ""))
            if device is None:
                return _error(400, "expired_token", 70020, "The device code expired.")
            if device["user"] is None:
                return 400, {"error": "authorization_pending"}
            del self.devices[form["device_code"]]
            return 200, self._issue(Grant(device["user"], client_id, device["scope"]), refresh=True)
        if grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = self._verified_assertion(form.get("assertion", ""))
            if claims is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            return 200, self._issue(Grant(claims["sub"], claims["iss"], claims.get("scope", "")),
                                    refresh=False)
        return 400, {"error": "unsupported_grant_type"}

    def _verified_assertion(self, assertion: str) -> dict | None:
        from google.auth import jwt

        try:
            payload = json.loads(_b64(assertion.split(".")[1]))
            key = self.service_accounts[payload["iss"]]
            return jwt.decode(assertion, certs=key, verify=True, audience=payload["aud"]) \
                if isinstance(key, str) else None
        except Exception:  # noqa: BLE001 - any malformed or unsigned assertion is refused
            return None

    def _issue(self, grant: Grant, *, refresh: bool) -> dict:
        token = "at-" + secrets.token_urlsafe(16)
        body = {"token_type": "Bearer", "access_token": token, "expires_in": self.access_lifetime,
                "scope": grant.scope, "issued_at": time.time()}
        with self.lock:
            self.access[token] = grant
            if refresh:
                new = "rt-" + secrets.token_urlsafe(16)
                self.refresh[new] = grant
                body["refresh_token"] = new
                self.issued_with[token] = new
        return body


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _error(status: int, error: str, aadsts: int, text: str) -> tuple[int, dict]:
    return status, {"error": error, "error_description": f"AADSTS{aadsts}: {text}",
                    "error_codes": [aadsts]}


# --- pytest fixture -------------------------------------------------------------------------------

import pytest  # noqa: E402


@pytest.fixture
def token_server():
    """A started token server on loopback, stopped afterwards."""
    yield from loopback_http.running(TokenServer())
