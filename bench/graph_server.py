"""A local Microsoft Graph for tests and the benchmark: the endpoints ticketpost calls, on loopback.

Documented behaviour it reproduces:

* ``POST /{tenant}/oauth2/v2.0/token``: client credentials → a bearer token (``token_requests``);
  an unknown or expired token gets ``401 InvalidAuthenticationToken``;
* ``GET /v1.0/users/{user}/mailFolders/{folder}/messages/delta``: pages of at most
  ``Prefer: odata.maxpagesize`` messages (``id``, ``internetMessageId``, ``from``,
  ``receivedDateTime``), ``@odata.nextLink`` to the next page, ``@odata.deltaLink`` on the last;
  ``$filter=receivedDateTime ge ...`` on the first round. A later round returns what changed since
  (new mail, and messages whose ``isRead`` changed, as Graph does). ``expire_links()`` makes every
  link issued so far answer ``410 Gone`` (``SyncStateNotFound``);
* ``GET .../messages/{id}/$value``: the raw MIME;
* ``PATCH .../messages/{id}`` ``{"isRead": true}``; ``POST .../messages/{id}/move``
  ``{"destinationId"}`` (a new id in the other folder);
* ``throttle(n, seconds)``: the next ``n`` API requests answer ``429`` with ``Retry-After``;
* ``POST /v1.0/users/{user}/sendMail`` with ``Content-Type: text/plain``: a base64 MIME message,
  answered ``202`` (kept in ``sent_mail`` as (user, MIME bytes)); anything else there is ``400``.

``hold_patches()`` makes PATCH requests wait (unapplied) until ``release_patches()``: a test can
kill the poller while its acknowledgement is in flight.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from bench import loopback_http


@dataclass
class Message:
    id: str
    folder: str
    raw: bytes
    message_id: str
    sender: str
    received: datetime
    is_read: bool = False
    seq: int = 0


@dataclass
class GraphServer:
    """State and endpoints; ``start()`` serves them on a free loopback port."""

    client_id: str = "graph-app"
    client_secret: str = "graph-secret"
    token_lifetime: int = 3600
    messages: dict[str, Message] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    api_requests: int = 0
    patches: int = 0
    throttled_answers: int = 0
    link_epoch: int = 0  # links of an older epoch are expired (410)
    seq: int = 0
    rounds: list = field(default_factory=list)  # (ids, upto) of each delta round begun
    sent_mail: list = field(default_factory=list)  # (user, raw MIME) of each sendMail
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _throttle: list = field(default_factory=lambda: [0, 0.0])
    _patches_open: threading.Event = field(default_factory=threading.Event)
    patch_waiting: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self._patches_open.set()

    # --- set-up by the test --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/tenant-1/oauth2/v2.0/token"

    def deliver(self, raw: bytes, *, folder: str = "inbox", sender: str = "user@acme.example",
                message_id: str | None = None, received: datetime | None = None) -> str:
        """Put a message into ``folder``; returns its Graph id."""
        with self.lock:
            self.seq += 1
            graph_id = "AAMk" + secrets.token_urlsafe(18)
            self.messages[graph_id] = Message(
                graph_id, folder.lower(), raw, message_id or f"<{graph_id}@acme.example>", sender,
                received or datetime.now(timezone.utc), seq=self.seq)
        return graph_id

    def read_state(self) -> dict[str, bool]:
        return {m.id: m.is_read for m in self.messages.values()}

    def in_folder(self, folder: str) -> list[Message]:
        return [m for m in self.messages.values() if m.folder == folder.lower()]

    def expire_links(self) -> None:
        with self.lock:
            self.link_epoch += 1

    def throttle(self, count: int, seconds: float) -> None:
        self._throttle[:] = [count, seconds]

    def hold_patches(self) -> None:
        self.patch_waiting.clear()
        self._patches_open.clear()

    def release_patches(self) -> None:
        self._patches_open.set()

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> "GraphServer":
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, body: bytes | dict, content_type: str = "application/json",
                      headers: dict | None = None) -> None:
                data = json.dumps(body).encode() if isinstance(body, dict) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self._body()
                if self.path.endswith("/token"):
                    return self._send(*state.token(parse_qs(body.decode())))
                if self.path == "/v1.0/$batch":
                    return self._send(*state.batch(self.headers, body))
                return self._send(*state.api("POST", self.path, self.headers, body))

            def do_GET(self):
                if self.path == "/_stats":  # for a benchmark running the server in a child process
                    return self._send(200, state.stats())
                return self._send(*state.api("GET", self.path, self.headers, b""))

            def do_PATCH(self):
                body = self._body()
                return self._send(*state.api("PATCH", self.path, self.headers, body))

        self._server = loopback_http.serve(Handler, self.port)
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        self._patches_open.set()
        loopback_http.close(self._server)
        self._server = None

    def stats(self) -> dict:
        return {"token_requests": self.token_requests, "api_requests": self.api_requests,
                "read": sum(m.is_read for m in self.messages.values()),
                "messages": len(self.messages)}

    # --- endpoints -------------------------------------------------------------------------------

    def token(self, form: dict) -> tuple:
        with self.lock:
            self.token_requests += 1
        if form.get("client_id", [""])[0] != self.client_id \
                or form.get("client_secret", [""])[0] != self.client_secret:
            return 401, {"error": "invalid_client", "error_description":
                         "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]}
        token = "gt-" + secrets.token_urlsafe(16)
        self.tokens.add(token)
        return 200, {"token_type": "Bearer", "access_token": token,
                     "expires_in": self.token_lifetime}

    def api(self, method: str, path: str, headers, body: bytes) -> tuple:
        with self.lock:
            self.api_requests += 1
            if self._throttle[0] > 0:
                self._throttle[0] -= 1
                self.throttled_answers += 1
                return 429, {"error": {"code": "TooManyRequests", "message": "Slow down."}}, \
                    "application/json", {"Retry-After": f"{self._throttle[1]:g}"}
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return 401, {"error": {"code": "InvalidAuthenticationToken",
                                   "message": "Access token is empty or invalid."}}
        parts = urlsplit(path)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        query = parse_qs(parts.query)
        if method == "POST" and segments[-1] == "sendMail":  # /v1.0/users/{user}/sendMail (MIME)
            if not headers.get("Content-Type", "").startswith("text/plain"):
                return 400, {"error": {"code": "ErrorMimeContentInvalid", "message": "not MIME"}}
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                return 400, {"error": {"code": "ErrorMimeContentInvalidBase64String", "message": "bad base64"}}
            with self.lock:
                self.sent_mail.append((segments[2], raw))
            return 202, b"", "text/plain"
        # /v1.0/users/{user}/mailFolders/{folder}/messages/delta
        if method == "GET" and segments[-1] == "delta":
            return self.delta(user=segments[2], folder=segments[4], query=query, headers=headers)
        if segments[3] != "messages":
            return 400, {"error": {"code": "BadRequest", "message": path}}
        message = self.messages.get(segments[4])
        if message is None:
            return 404, {"error": {"code": "ErrorItemNotFound", "message": "not found"}}
        if method == "GET" and segments[-1] == "$value":
            return 200, message.raw, "message/rfc822"
        if method == "PATCH":
            self.patch_waiting.set()
            self._patches_open.wait()
            changes = json.loads(body or b"{}")
            with self.lock:
                self.patches += 1
                if "isRead" in changes and changes["isRead"] != message.is_read:
                    message.is_read = bool(changes["isRead"])
                    self.seq += 1
                    message.seq = self.seq
            return 200, self.item(message)
        if method == "POST" and segments[-1] == "move":
            target = json.loads(body)["destinationId"].lower()
            with self.lock:
                del self.messages[message.id]
                self.seq += 1
                moved = Message("AAMk" + secrets.token_urlsafe(18), target, message.raw,
                                message.message_id, message.sender, message.received,
                                message.is_read, self.seq)
                self.messages[moved.id] = moved
            return 201, self.item(moved)
        return 405, {"error": {"code": "MethodNotAllowed", "message": method}}

    def batch(self, headers, body: bytes) -> tuple:
        """JSON batching: each request answered in ``responses``; a non-JSON body base64."""
        import base64

        with self.lock:
            self.api_requests += 1
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return 401, {"error": {"code": "InvalidAuthenticationToken",
                                   "message": "Access token is empty or invalid."}}
        requests = json.loads(body)["requests"]
        if len(requests) > 20:
            return 400, {"error": {"code": "BadRequest", "message": "at most 20 requests"}}
        responses = []
        for request in requests:
            sub = {"Authorization": auth, **(request.get("headers") or {})}
            answer = self.api(request["method"], "/v1.0" + request["url"], sub,
                              json.dumps(request.get("body") or {}).encode())
            status, content = answer[0], answer[1]
            extra = answer[3] if len(answer) > 3 else {}
            responses.append({
                "id": request["id"], "status": status, "headers": extra,
                "body": base64.b64encode(content).decode() if isinstance(content, bytes) else content,
            })
        return 200, {"responses": responses}

    def delta(self, *, user: str, folder: str, query: dict, headers) -> tuple:
        """A round is the changes with seq in (since, upto], listed when the round starts (a
        change during the round comes in the next one, as with Graph); pages are offsets."""
        page_size = 10
        prefer = headers.get("Prefer", "")
        if "odata.maxpagesize=" in prefer:
            page_size = int(prefer.split("odata.maxpagesize=")[1].split(",")[0])
        skip, delta = (query.get("$skiptoken") or [None])[0], (query.get("$deltatoken") or [None])[0]
        token = skip or delta
        if token and int(token.split(".")[0]) != self.link_epoch:
            return 410, {"error": {"code": "SyncStateNotFound",
                                   "message": "The sync state is not found or expired."}}
        with self.lock:
            if skip:
                _, round_id, offset = skip.split(".")
                offset = int(offset)
            else:
                since = int(delta.split(".")[1]) if delta else 0
                after = (query.get("$filter") or [""])[0].replace("receivedDateTime ge ", "")
                round_id, offset = str(len(self.rounds)), 0
                upto = self.seq
                ids = [m.id for m in sorted(self.messages.values(), key=lambda m: m.seq)
                       if m.folder == folder.lower() and since < m.seq <= upto
                       and (not after or m.received.strftime("%Y-%m-%dT%H:%M:%SZ") >= after)]
                self.rounds.append((ids, upto))
            ids, upto = self.rounds[int(round_id)]
            page = [self.messages[i] for i in ids[offset:offset + page_size] if i in self.messages]
        base = f"{self.url}/v1.0/users/{quote(user, safe='@')}/mailFolders/{quote(folder)}/messages/delta"
        body: dict = {"value": [self.item(m) for m in page]}
        if offset + page_size < len(ids):
            body["@odata.nextLink"] = f"{base}?$skiptoken={self.link_epoch}.{round_id}.{offset + page_size}"
        else:
            body["@odata.deltaLink"] = f"{base}?$deltatoken={self.link_epoch}.{upto}"
        return 200, body

    @staticmethod
    def item(message: Message) -> dict:
        return {"id": message.id, "internetMessageId": message.message_id,
                "receivedDateTime": message.received.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "isRead": message.is_read,
                "from": {"emailAddress": {"address": message.sender}}}


def serve_corpus(n: int, seed: int, received: datetime, ready) -> None:
    """Run in a child process (the benchmark): ``n`` corpus messages in the inbox, then serve;
    ``ready`` (a multiprocessing connection) gets the port."""
    from bench.corpus import generate

    server = GraphServer()
    for i, raw in enumerate(generate(n, seed=seed)):
        server.deliver(raw, message_id=f"<bench-{i}@graph.example>", received=received)
    server.start()
    ready.send(server.port)
    threading.Event().wait()
