"""Microsoft Graph intake: one poller thread per enabled ``kind: graph`` mailbox (SPEC §9).

A poller (``GraphPoller``) holds the mailbox's lease (``ingest.imap_lock``: the same lock rules
as IMAP, so one poller per mailbox across processes and machines) and every
``TICKETPOST_GRAPH_POLL_SECONDS`` runs ``sync_folder``, whose ``STEPS`` are, in order:

1. ``finish_acknowledgements``: messages committed earlier but not yet marked read (a poller
   killed between commit and PATCH) are marked read (or moved) now;
2. ``take_in_changes``: the delta query of the folder, page by page. The first query (no link
   stored) asks for messages received since the mailbox's ``since`` (default: when it was added,
   so a new mailbox starts with new mail). For each page: the raw MIME of every message not seen
   before (``GET /messages/{id}/$value``) → ONE transaction: the inbound rows, one
   ``graph_messages`` row per Graph id (unique per mailbox), and the page's ``@odata.nextLink`` or
   final ``@odata.deltaLink`` as the folder's link, compare-and-set against the link the page
   came from → hand the ids to routing → mark read (``PATCH {"isRead": true}``) or move to
   ``processed_folder``, batched the same way → ``graph_messages.acked``. A restart resumes from the committed link.

De-duplication: a Graph id already in ``graph_messages`` is skipped (marking a message read
makes it show up again in the next delta round as a change); so is a message whose Message-ID and
sender this mailbox already stored (a full resync after the link expired: ``410 Gone`` drops the
link and starts over). ``429`` and ``503`` wait for ``Retry-After`` (seconds, or an HTTP date;
``TICKETPOST_GRAPH_POLL_SECONDS`` when absent) and try the same request again (inside a batch:
only the throttled requests of it). ``401`` gets a
fresh token once; a token the provider refuses puts the mailbox in health ``auth_failed``
(``models.oauth2``), with the same backoff as IMAP.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from core.settings import Settings
from ingest.handover import enqueue_for_routing
from ingest.imap import describe, failure_delay, record_auth_ok, record_failure
from ingest.imap_sync import CheckpointMoved, MailboxGone
from ingest.pollers import LeasedPoller, PollerSupervisor
from ingest.store import inbound_values, insert_inbound
from models import GraphMessage, InboundMessage, Mailbox
from models.base import utcnow
from models.db import session_scope
from models.mailbox import GRAPH_BASE_URL
from models.oauth2 import AuthFailed, access_token
from routing.mailparse import header_message_id

log = logging.getLogger(__name__)

#: JSON batches in flight at once per page (downloads, or marking read).
FETCH_THREADS = 4
#: Requests per JSON batch (Graph's limit is 20).
BATCH_SIZE = 20
#: Tries of one request answered 429/503 before the pass gives up (and backs off).
MAX_THROTTLED_TRIES = 8
SELECT = "id,internetMessageId,from,receivedDateTime"


class GraphError(Exception):
    """Raised when Graph answers a request with an error we cannot get past by retrying it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(f"Graph {status} {code}: {message}".strip())


class DeltaExpired(Exception):
    """Raised when Graph no longer knows the stored delta or next link (410): resync."""


@dataclass(frozen=True)
class GraphMailbox:
    """What a Graph poller needs to know about a mailbox row (a detached snapshot)."""

    id: int
    name: str
    user: str
    folder: str
    processed_folder: str | None
    base_url: str
    since: datetime | None
    created_at: datetime | None
    oauth2: tuple

    @classmethod
    def of(cls, row: Mailbox) -> "GraphMailbox":
        return cls(
            id=row.id, name=row.name, user=row.username, folder=row.folder or "inbox",
            processed_folder=row.processed_folder,
            base_url=(row.graph_base_url or GRAPH_BASE_URL).rstrip("/"),
            since=row.since, created_at=row.created_at,
            oauth2=(row.oauth2_provider, row.oauth2_tenant_id, row.oauth2_client_id,
                    bytes(row.oauth2_client_secret_encrypted or b""), row.oauth2_scope,
                    row.oauth2_grant, row.oauth2_authority_url, row.oauth2_token_url),
        )

    @property
    def source(self) -> str:
        """The ``source`` of inbound messages from this mailbox."""
        return f"graph:{self.name}"

    @property
    def api(self) -> str:
        return f"{self.base_url}/v1.0/users/{quote(self.user, safe='@')}"

    @property
    def move_to(self) -> str | None:
        folder = (self.processed_folder or "").strip()
        return folder if folder and folder != self.folder else None

    @property
    def first_delta_url(self) -> str:
        """The delta query of a folder never synced: messages received since ``since``."""
        moment = self.since or self.created_at or datetime(1970, 1, 1, tzinfo=timezone.utc)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (f"{self.api}/mailFolders/{quote(self.folder, safe='')}/messages/delta"
                f"?$select={SELECT}&$filter=receivedDateTime+ge+{stamp}")


# --- talking to Graph ------------------------------------------------------------------------------


class GraphClient:
    """HTTP to Graph as one mailbox: bearer token (cached), 401 → new token once, 429/503 wait."""

    def __init__(self, mailbox: GraphMailbox, *, engine: Engine, settings: Settings,
                 should_stop: Callable[[], bool] = lambda: False,
                 wait: Callable[[float], object] = time.sleep) -> None:
        self.mailbox = mailbox
        self.engine = engine
        self.settings = settings
        self.should_stop = should_stop
        self.wait = wait
        self.http = httpx.Client(timeout=settings.graph_timeout_s,
                                 limits=httpx.Limits(max_connections=FETCH_THREADS + 2))
        self.throttled = 0  # 429/503 answers waited out (for tests and logs)
        self._token: str | None = None
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def token(self, *, refused: str | None = None) -> str:
        """The access token for this pass (``models.oauth2`` caches it across passes; held here
        so the requests of one pass do not each read the mailbox row). ``refused``: Graph
        answered 401 to that token; a new one is fetched once, however many threads saw it."""
        with self._token_lock:
            if self._token is None or (refused is not None and refused == self._token):
                self._token = access_token(self.mailbox.id, engine=self.engine,
                                           settings=self.settings, refresh=refused is not None)
            return self._token

    def begin_pass(self) -> None:
        """Forget the pass's token: the next request asks ``models.oauth2`` (renewed near expiry)."""
        self._token = None

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """Send the request; returns a 2xx response or raises GraphError/DeltaExpired/AuthFailed."""
        refused: str | None = None
        tries = 0
        while True:
            token = self.token(refused=refused)
            headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
            try:
                response = self.http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise GraphError(0, type(exc).__name__, str(exc)) from None
            if response.status_code < 300:
                return response
            if response.status_code in (429, 503) and tries < MAX_THROTTLED_TRIES \
                    and not self.should_stop():
                tries += 1
                self.throttled += 1
                delay = retry_after(response, default=self.settings.graph_poll_seconds)
                log.info("Graph throttled; waiting as told",
                         extra={"mailbox": self.mailbox.name, "status": response.status_code,
                                "retry_after_s": delay})
                self.wait(delay)
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            code, message = _error_of(response)
            if response.status_code == 401 and refused is None:
                refused = token
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            if response.status_code == 401:
                raise AuthFailed(code or "InvalidAuthenticationToken", message)
            if response.status_code == 403 and code in ("ErrorAccessDenied", "Authorization_RequestDenied"):
                raise AuthFailed(code, message)
            if response.status_code == 410 or code in ("SyncStateNotFound", "SyncStateInvalid",
                                                       "resyncRequired"):
                raise DeltaExpired(f"{code}: {message}")
            raise GraphError(response.status_code, code, message)


    def batch(self, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Send up to ``BATCH_SIZE`` requests as one JSON batch (``POST /v1.0/$batch``); return
        each answer by its ``id``. Answers 429/503 are sent again (only those) after their
        ``Retry-After``; the others are returned as they are (status, headers, body)."""
        answers: dict[str, dict[str, Any]] = {}
        pending = list(requests)
        tries = 0
        while pending:
            response = self.request("POST", f"{self.mailbox.base_url}/v1.0/$batch",
                                    json={"requests": pending})
            retry, delay = [], 0.0
            by_id = {r["id"]: r for r in pending}
            for answer in response.json().get("responses", []):
                if answer.get("status") in (429, 503) and tries < MAX_THROTTLED_TRIES:
                    retry.append(by_id[answer["id"]])
                    delay = max(delay, retry_after_value(
                        _header(answer, "Retry-After"), default=self.settings.graph_poll_seconds))
                else:
                    answers[answer["id"]] = answer
            if retry:
                if self.should_stop():
                    raise GraphError(429, "TooManyRequests", "stopping while throttled")
                tries += 1
                self.throttled += 1
                self.wait(delay)
            pending = retry
        return answers


def _header(answer: dict[str, Any], name: str) -> str | None:
    for key, value in (answer.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def retry_after(response: httpx.Response, *, default: float) -> float:
    """Seconds to wait from a response's ``Retry-After`` header (see ``retry_after_value``)."""
    return retry_after_value(response.headers.get("Retry-After"), default=default)


def retry_after_value(value: str | None, *, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date), at most 10 min."""
    value = (value or "").strip()
    if not value:
        return default
    try:
        return min(600.0, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return min(600.0, max(0.0, (when - datetime.now(timezone.utc)).total_seconds()))
    except (TypeError, ValueError):
        return default


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "", response.text[:200]
    if isinstance(error, str):
        return error, ""
    return str(error.get("code") or ""), str(error.get("message") or "")


# --- one sync of the folder ----------------------------------------------------------------------


@dataclass
class Found:
    """One message of a delta page: its Graph id, headers we dedupe by, and its raw MIME."""

    graph_id: str
    message_id: str | None
    sender: str | None
    raw: bytes | None = None
    inbound_id: int | None = None
    duplicate: bool = False


@dataclass
class FolderSync:
    """State of one sync of the folder, shared by its steps."""

    client: GraphClient
    engine: Engine
    mailbox: GraphMailbox
    hand_over: Callable[[int], object]
    should_stop: Callable[[], bool]
    pool: ThreadPoolExecutor
    stored: list[int] = field(default_factory=list)
    duplicates: int = 0
    acknowledged: int = 0
    resyncs: int = 0


def sync_folder(
    client: GraphClient, *, engine: Engine, mailbox: GraphMailbox,
    hand_over: Callable[[int], object], should_stop: Callable[[], bool] = lambda: False,
    pool: ThreadPoolExecutor,
) -> FolderSync:
    """Run ``STEPS`` once over the mailbox's folder; return what was done."""
    ctx = FolderSync(client=client, engine=engine, mailbox=mailbox, hand_over=hand_over,
                     should_stop=should_stop, pool=pool)
    client.begin_pass()
    for step in STEPS:
        step(ctx)
    return ctx


def finish_acknowledgements(ctx: FolderSync) -> None:
    """Mark read (or move) what was committed but not acknowledged before an interruption."""
    with session_scope(ctx.engine) as session:
        pending = session.scalars(
            select(GraphMessage.graph_id).where(
                GraphMessage.mailbox_id == ctx.mailbox.id, GraphMessage.acked.is_(False)
            )
        ).all()
    if pending:
        log.info("acknowledging Graph messages stored before an interruption",
                 extra={"mailbox": ctx.mailbox.name, "count": len(pending)})
        acknowledge(ctx, list(pending))


def take_in_changes(ctx: FolderSync) -> None:
    """Follow the delta query page by page until its deltaLink (see the module docstring)."""
    link = _stored_link(ctx)
    while not ctx.should_stop():
        url = link or ctx.mailbox.first_delta_url
        try:
            page = ctx.client.request(
                "GET", url, headers={"Prefer": f"odata.maxpagesize={ctx.client.settings.graph_page_size}"}
            ).json()
        except DeltaExpired as exc:
            if link is None:
                raise
            log.warning("Graph delta link expired; resyncing the folder without duplicates",
                        extra={"mailbox": ctx.mailbox.name, "error": str(exc)})
            _commit_page(ctx, previous=link, following=None, found=[])
            ctx.resyncs += 1
            link = None
            continue
        following = page.get("@odata.nextLink") or page.get("@odata.deltaLink")
        found = [_found(item) for item in page.get("value", []) if "@removed" not in item]
        _skip_known(ctx, found)
        _download(ctx, [f for f in found if not f.duplicate])
        _commit_page(ctx, previous=link, following=following, found=found)
        new = [f for f in found if f.inbound_id is not None]
        for item in new:
            ctx.hand_over(item.inbound_id)
        acknowledge(ctx, [f.graph_id for f in new])
        link = following
        if "@odata.deltaLink" in page or not following:
            return


def record_pass(ctx: FolderSync) -> None:
    """The success in the health fields."""
    with session_scope(ctx.engine) as session:
        session.execute(
            update(Mailbox).where(Mailbox.id == ctx.mailbox.id)
            .values(last_success_at=utcnow(), consecutive_failures=0)
        )


STEPS: tuple[Callable[[FolderSync], None], ...] = (
    finish_acknowledgements,
    take_in_changes,
    record_pass,
)


def acknowledge(ctx: FolderSync, graph_ids: list[str]) -> None:
    """Mark read (or move) the messages, ``BATCH_SIZE`` per JSON batch, then record them as
    acknowledged (one UPDATE). A message gone meanwhile (404) needs nothing more."""
    if not graph_ids:
        return
    target = ctx.mailbox.move_to
    path = f"/users/{quote(ctx.mailbox.user, safe='@')}/messages"

    def request(graph_id: str) -> dict[str, Any]:
        url = f"{path}/{quote(graph_id, safe='')}"
        if target is None:
            return {"id": graph_id, "method": "PATCH", "url": url, "body": {"isRead": True},
                    "headers": {"Content-Type": "application/json"}}
        return {"id": graph_id, "method": "POST", "url": f"{url}/move",
                "body": {"destinationId": target}, "headers": {"Content-Type": "application/json"}}

    def one_batch(ids: list[str]) -> list[str]:
        answers = ctx.client.batch([request(i) for i in ids])
        for graph_id in ids:
            answer = answers.get(graph_id) or {"status": 0}
            if not (200 <= answer["status"] < 300 or answer["status"] == 404):
                code, message = _batch_error(answer)
                raise GraphError(answer["status"], code, f"marking {graph_id} read: {message}")
        return ids

    done = [i for ids in ctx.pool.map(one_batch, _chunks(graph_ids)) for i in ids]
    with session_scope(ctx.engine) as session:
        session.execute(
            update(GraphMessage)
            .where(GraphMessage.mailbox_id == ctx.mailbox.id, GraphMessage.graph_id.in_(done))
            .values(acked=True)
        )
    ctx.acknowledged += len(done)


# --- helpers -------------------------------------------------------------------------------------


def _found(item: dict[str, Any]) -> Found:
    sender = ((item.get("from") or {}).get("emailAddress") or {}).get("address")
    message_id = (item.get("internetMessageId") or "").strip().strip("<>") or None
    return Found(graph_id=item["id"], message_id=message_id,
                 sender=sender.lower() if sender else None)


def _stored_link(ctx: FolderSync) -> str | None:
    with session_scope(ctx.engine) as session:
        row = session.get(Mailbox, ctx.mailbox.id)
        if row is None:
            raise MailboxGone(f"mailbox id {ctx.mailbox.id} no longer exists")
        return (row.graph_delta_links or {}).get(ctx.mailbox.folder)


def _skip_known(ctx: FolderSync, found: list[Found]) -> None:
    """Mark what this mailbox stored already: same Graph id, or same Message-ID and sender."""
    if not found:
        return
    with session_scope(ctx.engine) as session:
        known_ids = set(session.scalars(
            select(GraphMessage.graph_id).where(
                GraphMessage.mailbox_id == ctx.mailbox.id,
                GraphMessage.graph_id.in_([f.graph_id for f in found]),
            )
        ))
        wanted = {f.message_id for f in found if f.message_id and f.graph_id not in known_ids}
        known_mail: set[tuple[str, str | None]] = set()
        if wanted:
            for message_id, sender, envelope in session.execute(
                select(InboundMessage.message_id, InboundMessage.sender_email,
                       InboundMessage.envelope_from)
                .where(InboundMessage.source == ctx.mailbox.source,
                       InboundMessage.message_id.in_(wanted))
            ):
                known_mail.add((message_id, (sender or envelope or "").lower() or None))
    seen: set[str] = set()
    for item in found:
        same_mail = any(mid == item.message_id and (who is None or item.sender is None
                                                    or who == item.sender)
                        for mid, who in known_mail)
        if item.graph_id in known_ids or item.graph_id in seen or same_mail:
            item.duplicate = True
            ctx.duplicates += 1
        seen.add(item.graph_id)


def _download(ctx: FolderSync, items: list[Found]) -> None:
    """The raw MIME (``/messages/{id}/$value``) of each message, ``BATCH_SIZE`` per JSON batch
    (a batch answers a non-JSON body base64-encoded), a few batches at a time."""
    path = f"/users/{quote(ctx.mailbox.user, safe='@')}/messages"

    def one_batch(chunk: list[Found]) -> None:
        answers = ctx.client.batch([
            {"id": item.graph_id, "method": "GET",
             "url": f"{path}/{quote(item.graph_id, safe='')}/$value"} for item in chunk
        ])
        for item in chunk:
            answer = answers.get(item.graph_id) or {"status": 0}
            if answer["status"] == 404:
                item.duplicate = True  # deleted between the delta page and the download
                continue
            if answer["status"] != 200:
                code, message = _batch_error(answer)
                raise GraphError(answer["status"], code, f"downloading {item.graph_id}: {message}")
            body = answer.get("body")
            item.raw = base64.b64decode(body) if isinstance(body, str) else \
                json.dumps(body).encode()
            if item.message_id is None:
                item.message_id = header_message_id(item.raw)

    list(ctx.pool.map(one_batch, _chunks(items)))


def _chunks(items: list) -> list[list]:
    return [items[i:i + BATCH_SIZE] for i in range(0, len(items), BATCH_SIZE)]


def _batch_error(answer: dict[str, Any]) -> tuple[str, str]:
    error = (answer.get("body") or {}) if isinstance(answer.get("body"), dict) else {}
    error = error.get("error") or {}
    return str(error.get("code") or ""), str(error.get("message") or answer.get("status"))


def _commit_page(ctx: FolderSync, *, previous: str | None, following: str | None,
                 found: list[Found]) -> None:
    """ONE transaction: the page's new messages, their Graph ids and the folder's next link
    (compare-and-set against ``previous``, so two pollers can never both store a page)."""
    stored = [f for f in found if not f.duplicate and f.raw is not None]
    with session_scope(ctx.engine) as session:
        row = session.execute(
            select(Mailbox).where(Mailbox.id == ctx.mailbox.id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise MailboxGone(f"mailbox id {ctx.mailbox.id} no longer exists")
        links = dict(row.graph_delta_links or {})
        if links.get(ctx.mailbox.folder) != previous:
            raise CheckpointMoved(f"mailbox {row.name!r}: the delta link moved under this poller")
        ids = insert_inbound(session, [
            inbound_values(raw=f.raw, source=ctx.mailbox.source, message_id=f.message_id,
                           envelope_from=f.sender)
            for f in stored
        ])
        for item, inbound_id in zip(stored, ids):
            item.inbound_id = inbound_id
        if stored:
            session.add_all([
                GraphMessage(mailbox_id=ctx.mailbox.id, folder=ctx.mailbox.folder,
                             graph_id=f.graph_id, inbound_id=f.inbound_id, acked=False)
                for f in stored
            ])
        if following is None:
            links.pop(ctx.mailbox.folder, None)
        else:
            links[ctx.mailbox.folder] = following
        row.graph_delta_links = links
        row.last_success_at = utcnow()
        row.consecutive_failures = 0
    ctx.stored.extend(ids)


# --- the poller and its service ------------------------------------------------------------------


class GraphPoller(LeasedPoller):
    """The thread that keeps one Graph mailbox's folder taken in (see the module docstring)."""

    label = "Graph"

    def __init__(self, mailbox: GraphMailbox, *, engine: Engine, settings: Settings,
                 hand_over: Callable[[int], object] = enqueue_for_routing) -> None:
        super().__init__(mailbox_id=mailbox.id, mailbox_name=mailbox.name, engine=engine,
                         settings=settings, hand_over=hand_over)
        self.mailbox = mailbox
        self.throttled = 0
        self.resyncs = 0

    def _hold(self, lock) -> None:
        client = GraphClient(self.mailbox, engine=self.engine, settings=self.settings,
                             should_stop=self._stop_event.is_set, wait=self._stop_event.wait)
        pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix=f"graph-{self.mailbox.name}")
        try:
            while not self.stopping and lock.alive():
                try:
                    result = sync_folder(client, engine=self.engine, mailbox=self.mailbox,
                                         hand_over=self.hand_over,
                                         should_stop=self._stop_event.is_set, pool=pool)
                except MailboxGone:
                    self._stop_event.set()
                    return
                except CheckpointMoved as exc:
                    log.warning("Graph delta link moved under this poller; starting over",
                                extra={"mailbox": self.mailbox.name, "error": str(exc)})
                    self._stop_event.wait(1.0)
                    continue
                except Exception as exc:  # noqa: BLE001 - record, back off, retry
                    if self.stopping:
                        return
                    self._failed(exc)
                    continue
                finally:
                    self.throttled = client.throttled
                if self.failures or not self.passes:  # clears auth_failed of an earlier run too
                    if self.failures:
                        log.info("Graph mailbox recovered", extra={"mailbox": self.mailbox.name})
                    record_auth_ok(self.engine, self.mailbox.id)
                self.passes += 1
                self.resyncs += result.resyncs
                self.failures = 0
                if result.stored:
                    log.info("Graph messages stored", extra={
                        "mailbox": self.mailbox.name, "stored": len(result.stored),
                        "duplicates": result.duplicates})
                self._stop_event.wait(self.settings.graph_poll_seconds)
        finally:
            pool.shutdown(wait=True)
            client.close()

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        error = str(exc) if isinstance(exc, AuthFailed) else describe(exc)
        delay = failure_delay(exc, self.failures, self.settings)
        log.warning("Graph mailbox failed; retrying", extra={
            "mailbox": self.mailbox.name, "error": error, "failures": self.failures,
            "retry_in_s": round(delay, 2)})
        try:
            record_failure(self.engine, self.mailbox.id, error,
                           auth_failed=isinstance(exc, AuthFailed),
                           unhealthy_after=self.settings.webhooks_mailbox_failures)
        except Exception:  # noqa: BLE001 - the database may be what failed
            log.warning("could not record the failure", extra={"mailbox": self.mailbox.name})
        self._stop_event.wait(delay)


class GraphService(PollerSupervisor):
    """Runs a ``GraphPoller`` for each enabled graph mailbox and follows the mailbox table
    (``ingest.pollers.PollerSupervisor``)."""

    kind = "graph"
    label = "graph"
    config_class = GraphMailbox
    poller_class = GraphPoller
