"""One sync pass over an IMAP folder: find new mail by UID, store it with the checkpoint, then flag.

The order is the guarantee (SPEC §4):

1. ``select_folder``: SELECT the folder; learn UIDVALIDITY and UIDNEXT.
2. ``adopt_uidvalidity``: a mailbox seen for the first time, or a folder whose UIDVALIDITY changed
   (deleted and recreated, restored, migrated), restarts its checkpoint at UID 0 and marks every
   UID already in the folder (``resync_until_uid``) as "old": those are only taken in when their
   INTERNALDATE is at or after the mailbox's ``since`` (default: when the mailbox was added), and
   never when this mailbox already stored the same Message-ID or the same bytes (SHA-256). So a
   new mailbox does not turn years of mail into tickets, and a recreated folder re-tickets nothing.
3. ``finish_acknowledgements``: a poller killed between commit and flag left ``acked_uid <
   last_uid``; those messages are stored already, so they are only flagged/moved now.
4. ``ingest_new_mail``: ``UID SEARCH`` for UIDs above ``last_uid`` (never ``UNSEEN``: mail a
   person already read is still ours), then per batch of ``TICKETPOST_IMAP_BATCH_SIZE`` UIDs the
   ``BATCH_STEPS``: inspect sizes → download ``BODY.PEEK[]`` (leaves ``\\Seen`` alone) → commit the
   messages and the new ``last_uid`` in ONE transaction (compare-and-set on the checkpoint, so a
   second poller can never store the same UID) → hand the ids to the routing queue → ``\\Seen`` or
   MOVE to the processed folder (``acked_uid`` is written with the next commit).
5. ``record_pass``: the final ``acked_uid``, the health fields, one transaction.

A message over ``TICKETPOST_SMTP_MAX_MESSAGE_BYTES`` (by ``RFC822.SIZE``) is not downloaded. It gets
an inbound record with status and outcome ``failed``, empty raw bytes, ``size`` = its real size,
its Message-ID/From/Subject from a header-only fetch, and a reason saying it was too large; on the
server it keeps its ``\\Seen`` state, stays in the folder for a person to handle, and gets the
keyword ``$TicketpostTooLarge``, which keeps it out of every later search (also after a
UIDVALIDITY change).

A UID the server answers without its size or its body (``inspect``/``download``) is asked about
once more with ``UID SEARCH``: gone from the folder (expunged by someone between our SEARCH and
FETCH) → skipped and logged; still there → logged, and the batch is cut just before it, so
``last_uid`` stays below it and the next pass fetches it again (the mailbox's ``last_error`` says
so meanwhile). Nothing the server still holds is passed over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine

from ingest.store import content_sha256, inbound_values, insert_inbound
from models import InboundMessage, Mailbox
from models.addresses import InvalidAddress, parse_address
from models.base import utcnow
from models.db import session_scope
from routing.mailparse import header_message_id

log = logging.getLogger(__name__)

TOO_LARGE_KEYWORD = "$TicketpostTooLarge"
SEEN = b"\\Seen"
#: Most bytes downloaded per batch (a batch is also at most TICKETPOST_IMAP_BATCH_SIZE messages).
BATCH_BYTES = 64 * 1024 * 1024
_STUB_HEADERS = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID FROM SUBJECT)]"


class CheckpointMoved(Exception):
    """Raised when the stored checkpoint is not the one this pass started from (another poller
    advanced it, or the mailbox was reconfigured); the batch is rolled back, nothing is flagged."""


class MailboxGone(Exception):
    """Raised when the mailbox row no longer exists (removed while its poller ran)."""


class FolderUnusable(Exception):
    """Raised when the server's SELECT answer lacks what we need (no UIDVALIDITY)."""


# --- what travels between the steps --------------------------------------------------------------


@dataclass(frozen=True)
class MailboxConfig:
    """What a poller needs to know about a mailbox row (a detached snapshot)."""

    id: int
    name: str
    host: str
    port: int | None
    security: str
    username: str
    password_encrypted: bytes | None
    folder: str
    processed_folder: str | None
    since: datetime | None
    created_at: datetime | None
    auth: str = "password"
    # OAuth2 settings (not the rotating refresh token): a change restarts the poller
    oauth2: tuple | None = None

    @classmethod
    def of(cls, row: Mailbox) -> "MailboxConfig":
        return cls(
            id=row.id,
            name=row.name,
            host=row.host,
            port=row.port,
            security=row.security,
            username=row.username,
            password_encrypted=bytes(row.password_encrypted) if row.password_encrypted else None,
            folder=row.folder or "INBOX",
            processed_folder=row.processed_folder,
            since=row.since,
            created_at=row.created_at,
            auth=row.auth or "password",
            oauth2=(row.oauth2_provider, row.oauth2_tenant_id, row.oauth2_client_id,
                    bytes(row.oauth2_client_secret_encrypted or b""), row.oauth2_scope,
                    row.oauth2_grant, row.oauth2_authority_url, row.oauth2_token_url)
            if row.auth == "oauth2" else None,
        )

    @property
    def source(self) -> str:
        """The ``source`` of inbound messages from this mailbox (SPEC §1)."""
        return f"imap:{self.name}"

    @property
    def move_to(self) -> str | None:
        """The processed folder, unless it is unset or the polled folder itself."""
        folder = (self.processed_folder or "").strip()
        return folder if folder and folder != self.folder else None

    @property
    def cutoff(self) -> datetime:
        """Old mail (see module docstring) counts only from here: ``since``, else the creation time,
        floored to the second because INTERNALDATE has no fractions."""
        moment = self.since or self.created_at or datetime(1970, 1, 1, tzinfo=timezone.utc)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.replace(microsecond=0)


@dataclass
class Checkpoint:
    """The stored position of a mailbox in its folder."""

    uidvalidity: int | None
    last_uid: int | None
    acked_uid: int | None
    resync_until_uid: int | None

    @classmethod
    def of(cls, row: Mailbox) -> "Checkpoint":
        return cls(row.uidvalidity, row.last_uid, row.acked_uid, row.resync_until_uid)


@dataclass
class PassResult:
    """What one sync pass did (for logs, tests and the benchmark)."""

    stored: list[int] = field(default_factory=list)
    duplicates: int = 0
    too_large: int = 0
    acknowledged: int = 0
    expunged: list[int] = field(default_factory=list)  # answered without a body, then gone
    retry: list[int] = field(default_factory=list)  # answered without a body, still there


@dataclass
class SyncPass:
    """State of one pass over the folder, shared by its steps."""

    client: object  # imapclient.IMAPClient
    engine: Engine
    config: MailboxConfig
    max_bytes: int
    batch_size: int
    hand_over: Callable[[int], object]
    should_stop: Callable[[], bool] = lambda: False
    checkpoint: Checkpoint | None = None
    uidvalidity: int = 0
    uidnext: int = 1
    keywords_allowed: bool = True
    advance_to: int | None = None  # old mail all filtered out: last_uid may jump here
    retry_from: int | None = None  # a UID the server sent no body for: the pass stops before it
    result: PassResult = field(default_factory=PassResult)

    @property
    def last_uid(self) -> int:
        return int(self.checkpoint.last_uid or 0)

    @property
    def resync_until(self) -> int:
        return int(self.checkpoint.resync_until_uid or 0)


@dataclass
class Item:
    """One message of a batch: its UID, size, INTERNALDATE and, once downloaded, its bytes."""

    uid: int
    size: int
    internaldate: datetime | None
    raw: bytes | None = None
    headers: bytes | None = None
    message_id: str | None = None
    sha256: str | None = None
    inbound_id: int | None = None
    duplicate: bool = False
    too_large: bool = False


@dataclass
class Batch:
    """Consecutive candidate UIDs processed and committed together."""

    uids: list[int]
    items: list[Item] = field(default_factory=list)

    unanswered: list[int] = field(default_factory=list)  # UIDs FETCH said nothing about

    @property
    def max_uid(self) -> int:
        return max(self.uids)

    @property
    def wanted(self) -> list[Item]:
        return [i for i in self.items if not i.too_large]


# --- the pass ------------------------------------------------------------------------------------


def sync_pass(
    client,
    *,
    engine: Engine,
    config: MailboxConfig,
    max_bytes: int,
    batch_size: int,
    hand_over: Callable[[int], object],
    should_stop: Callable[[], bool] = lambda: False,
) -> PassResult:
    """Run every step of ``STEPS`` once over the mailbox's folder; return what was done.

    ``should_stop`` is asked between batches: a stopping process finishes the batch in hand
    (committed and flagged) and leaves the rest for next time.
    """
    ctx = SyncPass(
        client=client,
        engine=engine,
        config=config,
        max_bytes=max_bytes,
        batch_size=max(1, batch_size),
        hand_over=hand_over,
        should_stop=should_stop,
    )
    for step in STEPS:
        step(ctx)
    return ctx.result


def select_folder(ctx: SyncPass) -> None:
    """SELECT the folder (read-write: we flag) and read UIDVALIDITY, UIDNEXT and PERMANENTFLAGS."""
    info = ctx.client.select_folder(ctx.config.folder)
    if b"UIDVALIDITY" not in info:
        raise FolderUnusable(f"the server gave no UIDVALIDITY for folder {ctx.config.folder!r}")
    ctx.uidvalidity = int(info[b"UIDVALIDITY"])
    if b"UIDNEXT" in info:
        ctx.uidnext = int(info[b"UIDNEXT"])
    else:  # servers may omit it; the highest UID present + 1 is what it would say
        uids = ctx.client.search(["ALL"])
        ctx.uidnext = (max(uids) + 1) if uids else 1
    permanent = info.get(b"PERMANENTFLAGS")
    ctx.keywords_allowed = permanent is None or b"\\*" in permanent
    take_mail_notices(ctx.client)  # the SELECT's own counts; later ones mean new mail
    ctx.checkpoint = load_checkpoint(ctx.engine, ctx.config.id)


def adopt_uidvalidity(ctx: SyncPass) -> None:
    """First look at this folder, or its UIDVALIDITY changed: restart the checkpoint (see above)."""
    if ctx.checkpoint.uidvalidity == ctx.uidvalidity and ctx.checkpoint.last_uid is not None:
        return
    fresh = Checkpoint(
        uidvalidity=ctx.uidvalidity, last_uid=0, acked_uid=0, resync_until_uid=ctx.uidnext - 1
    )
    with session_scope(ctx.engine) as session:
        row = _locked_row(session, ctx.config.id)
        _expect(row, ctx.checkpoint)
        row.uidvalidity, row.last_uid = fresh.uidvalidity, fresh.last_uid
        row.acked_uid, row.resync_until_uid = fresh.acked_uid, fresh.resync_until_uid
    if ctx.checkpoint.uidvalidity is not None:
        log.warning(
            "IMAP folder has a new UIDVALIDITY; re-reading it without re-ticketing",
            extra={
                "mailbox": ctx.config.name,
                "old_uidvalidity": ctx.checkpoint.uidvalidity,
                "uidvalidity": ctx.uidvalidity,
            },
        )
    ctx.checkpoint = fresh


def finish_acknowledgements(ctx: SyncPass) -> None:
    """Flag or move what an earlier poller committed but did not get to acknowledge."""
    acked = int(ctx.checkpoint.acked_uid or 0)
    if acked >= ctx.last_uid:
        return
    uids = [item.uid for item in inspect_uids(ctx, candidates(ctx, acked + 1, ctx.last_uid))
            if not item.too_large and _wanted(ctx, item)]
    if uids:
        log.info(
            "acknowledging messages stored before an interruption",
            extra={"mailbox": ctx.config.name, "count": len(uids)},
        )
        _acknowledge_uids(ctx, uids)
    ctx.checkpoint.acked_uid = ctx.last_uid  # written with the next commit, or by record_pass


def ingest_new_mail(ctx: SyncPass) -> None:
    """Take in every wanted UID above the checkpoint, batch by batch (``BATCH_STEPS``)."""
    pending = candidates(ctx, ctx.last_uid + 1, None)
    while pending:
        if ctx.should_stop():
            return
        batch = Batch(uids=pending[: ctx.batch_size])
        for step in BATCH_STEPS:
            step(ctx, batch)
        if ctx.retry_from is not None:
            return  # the rest waits for the UID to retry: the next pass starts with it
        pending = pending[len(batch.uids):]
    if ctx.last_uid < ctx.resync_until:
        ctx.advance_to = ctx.resync_until


def record_pass(ctx: SyncPass) -> None:
    """One small transaction at the end of a pass: how far acknowledgement got, the jump past
    filtered-out old mail (compare-and-set), and the success in the health fields."""
    with session_scope(ctx.engine) as session:
        row = _locked_row(session, ctx.config.id)
        _expect(row, ctx.checkpoint)
        if ctx.advance_to is not None and ctx.advance_to > ctx.last_uid:
            row.last_uid = ctx.advance_to
            if ctx.checkpoint.acked_uid == ctx.last_uid:  # nothing of it needs flagging
                ctx.checkpoint.acked_uid = ctx.advance_to
        row.acked_uid = ctx.checkpoint.acked_uid
        row.last_success_at = utcnow()
        row.consecutive_failures = 0
        if ctx.retry_from is not None:
            row.last_error = (f"IMAPNoBody: the server sent no body for UID {ctx.retry_from}, "
                              "which is still in the folder; fetching it again next pass")
            row.last_error_at = utcnow()
    if ctx.advance_to is not None and ctx.advance_to > ctx.last_uid:
        ctx.checkpoint.last_uid = ctx.advance_to


STEPS: tuple[Callable[[SyncPass], None], ...] = (
    select_folder,
    adopt_uidvalidity,
    finish_acknowledgements,
    ingest_new_mail,
    record_pass,
)


# --- the steps of one batch ----------------------------------------------------------------------


def inspect(ctx: SyncPass, batch: Batch) -> None:
    """FETCH sizes and dates; mark oversize ones; keep old mail only from the cutoff on; cut the
    batch where its download would exceed ``BATCH_BYTES``."""
    items = inspect_uids(ctx, batch.uids)
    kept: list[Item] = []
    total = 0
    for item in items:
        if not item.too_large:
            if kept and total + item.size > BATCH_BYTES:
                batch.uids = [uid for uid in batch.uids if uid < item.uid]
                break
            total += item.size
        kept.append(item)
    answered = {item.uid for item in items}
    batch.unanswered = [uid for uid in batch.uids if uid not in answered]
    batch.items = [item for item in kept if _wanted(ctx, item)]


def download(ctx: SyncPass, batch: Batch) -> None:
    """FETCH ``BODY.PEEK[]`` of the wanted messages (and only the headers of oversize ones)."""
    small = [i for i in batch.items if not i.too_large]
    if small:
        data = ctx.client.fetch(sorted(i.uid for i in small), ["BODY.PEEK[]"])
        for item in small:
            body = data.get(item.uid, {}).get(b"BODY[]")
            item.raw = bytes(body) if body is not None else None
            item.message_id = header_message_id(item.raw) if body is not None else None
    large = [i for i in batch.items if i.too_large]
    if large:
        data = ctx.client.fetch(sorted(i.uid for i in large), [_STUB_HEADERS])
        for item in large:
            fields = data.get(item.uid, {})
            item.headers = next(
                (bytes(v) for k, v in fields.items() if k.startswith(b"BODY[")), b""
            )
            item.message_id = header_message_id(item.headers)
    unanswered = batch.unanswered + [i.uid for i in small if i.raw is None]
    if unanswered:
        _unanswered(ctx, batch, unanswered)
    batch.items = [i for i in batch.items if i.too_large or i.raw is not None]


def _unanswered(ctx: SyncPass, batch: Batch, uids: list[int]) -> None:
    """UIDs FETCH said nothing about: skip the expunged ones, retry the others next pass."""
    present = set(ctx.client.search(["UID", ",".join(uid_set(uids))]))
    gone = sorted(uid for uid in uids if uid not in present)
    retry = sorted(uid for uid in uids if uid in present)
    extra = {"mailbox": ctx.config.name, "folder": ctx.config.folder}
    if gone:
        ctx.result.expunged.extend(gone)
        log.info("messages expunged before they were downloaded; skipped",
                 extra={**extra, "uids": gone})
    if not retry:
        return
    ctx.result.retry.extend(retry)
    ctx.retry_from = retry[0]
    log.warning("the server sent no body for messages still in the folder; fetching them again "
                "next pass", extra={**extra, "uids": retry})
    batch.uids = [uid for uid in batch.uids if uid < ctx.retry_from]
    batch.items = [item for item in batch.items if item.uid < ctx.retry_from]


def commit(ctx: SyncPass, batch: Batch) -> None:
    """In ONE transaction: check the checkpoint is still ours, skip duplicates of old mail, add
    the messages (and stubs for oversize ones), advance ``last_uid``; then COMMIT."""
    if not batch.uids:  # cut down to nothing: the first UID is to be retried
        return
    with session_scope(ctx.engine) as session:
        row = _locked_row(session, ctx.config.id)
        _expect(row, ctx.checkpoint)
        _mark_duplicates(ctx, session, [i for i in batch.items if i.uid <= ctx.resync_until])
        kept = [i for i in batch.items if not i.duplicate]
        ids = insert_inbound(session, [_row(ctx, item) for item in kept])
        for item, inbound_id in zip(kept, ids, strict=True):
            item.inbound_id = inbound_id
        row.last_uid = batch.max_uid
        row.acked_uid = ctx.checkpoint.acked_uid  # the previous batch's, saves a transaction
        row.last_success_at = utcnow()
        row.consecutive_failures = 0
    ctx.checkpoint.last_uid = batch.max_uid
    for item in batch.items:
        if item.duplicate:
            ctx.result.duplicates += 1
        elif item.too_large:
            ctx.result.too_large += 1
        else:
            ctx.result.stored.append(item.inbound_id)


def hand_over(ctx: SyncPass, batch: Batch) -> None:
    """Give the stored ids to the routing queue (a failed hand-over is the sweeper's to retry)."""
    for item in batch.items:
        if item.inbound_id is not None and not item.too_large:
            ctx.hand_over(item.inbound_id)


def acknowledge(ctx: SyncPass, batch: Batch) -> None:
    """Now that the batch is committed: ``\\Seen`` or MOVE it, keyword the oversize ones, and
    record how far acknowledgement got."""
    done = [i.uid for i in batch.items if not i.too_large]
    if done:
        _acknowledge_uids(ctx, done)
    large = [i.uid for i in batch.items if i.too_large]
    if large and ctx.keywords_allowed:
        ctx.client.add_flags(uid_set(large), [TOO_LARGE_KEYWORD.encode()], silent=True)
    ctx.result.acknowledged += len(done)
    # recorded by the next batch's commit or record_pass; a crash before that only means
    # these are flagged (or found moved) once more
    if batch.uids:
        ctx.checkpoint.acked_uid = batch.max_uid


BATCH_STEPS: tuple[Callable[[SyncPass, Batch], None], ...] = (
    inspect,
    download,
    commit,
    hand_over,
    acknowledge,
)


# --- helpers -------------------------------------------------------------------------------------


def take_mail_notices(client) -> bool:
    """True when the server announced mail (EXISTS/RECENT) alongside other answers; forgets it.

    Servers announce mail that arrives during a pass with the next command's answer, and say it
    once only: imaplib keeps such untagged answers aside (``untagged_responses``) where nothing
    else looks. Without this check, mail arriving mid-pass would wait for the next sweep.
    """
    pending = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    if not isinstance(pending, dict):
        return False
    found = False
    for key in ("EXISTS", "RECENT"):
        found = pending.pop(key, None) is not None or found
    return found


def load_checkpoint(engine: Engine, mailbox_id: int) -> Checkpoint:
    """The stored checkpoint; raises MailboxGone when the mailbox was removed."""
    with session_scope(engine) as session:
        row = session.get(Mailbox, mailbox_id)
        if row is None:
            raise MailboxGone(f"mailbox id {mailbox_id} no longer exists")
        return Checkpoint.of(row)


def candidates(ctx: SyncPass, low: int, high: int | None) -> list[int]:
    """UIDs in [low, high] (``high`` None: up to the newest) that may need taking in, ascending.

    Old mail (UIDs up to ``resync_until_uid``) is pre-filtered on the server with ``SINCE`` the
    day before the cutoff; the exact cutoff is applied to INTERNALDATE in ``inspect``.
    """
    found: set[int] = set()
    not_large = ["NOT", "KEYWORD", TOO_LARGE_KEYWORD] if ctx.keywords_allowed else []
    old_high = ctx.resync_until if high is None else min(high, ctx.resync_until)
    if low <= old_high:
        day = (ctx.config.cutoff - timedelta(days=1)).date()
        found.update(ctx.client.search(["UID", f"{low}:{old_high}", "SINCE", day, *not_large]))
    new_low = max(low, ctx.resync_until + 1)
    if high is None:
        found.update(ctx.client.search(["UID", f"{new_low}:*", *not_large]))
    elif new_low <= high:
        found.update(ctx.client.search(["UID", f"{new_low}:{high}", *not_large]))
    # "N:*" also matches the highest UID when it is below N: keep only the asked range
    return sorted(uid for uid in found if uid >= low and (high is None or uid <= high))


def inspect_uids(ctx: SyncPass, uids: Sequence[int]) -> list[Item]:
    """FETCH RFC822.SIZE and INTERNALDATE for ``uids``; flag the ones over the size limit."""
    if not uids:
        return []
    # INTERNALDATE only matters for old mail (the cutoff); parsing it is not free
    old = [uid for uid in uids if uid <= ctx.resync_until]
    data = ctx.client.fetch(sorted(old), ["RFC822.SIZE", "INTERNALDATE"]) if old else {}
    new = [uid for uid in uids if uid > ctx.resync_until]
    if new:
        data.update(ctx.client.fetch(sorted(new), ["RFC822.SIZE"]))
    items = []
    for uid in sorted(data):
        if uid not in uids:
            continue
        fields = data[uid]
        size = int(fields.get(b"RFC822.SIZE") or 0)
        items.append(
            Item(
                uid=uid,
                size=size,
                internaldate=_aware(fields.get(b"INTERNALDATE")),
                too_large=size > ctx.max_bytes,
            )
        )
    return items


def _wanted(ctx: SyncPass, item: Item) -> bool:
    """New mail always; old mail (see module docstring) only from the cutoff on."""
    if item.uid > ctx.resync_until:
        return True
    return item.internaldate is None or item.internaldate >= ctx.config.cutoff


def _aware(value) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def uid_set(uids: Iterable[int]) -> list[str]:
    """UIDs as compact IMAP ranges (``["1:5", "9"]``) so big batches make short commands."""
    ordered = sorted(set(int(u) for u in uids))
    ranges: list[str] = []
    start = prev = None
    for uid in ordered:
        if prev is not None and uid == prev + 1:
            prev = uid
            continue
        if start is not None:
            ranges.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    if start is not None:
        ranges.append(f"{start}:{prev}" if prev != start else str(start))
    return ranges


def _acknowledge_uids(ctx: SyncPass, uids: list[int]) -> None:
    target = ctx.config.move_to
    if target is None:
        ctx.client.add_flags(uid_set(uids), [SEEN], silent=True)
    elif ctx.client.has_capability("MOVE"):
        ctx.client.move(uid_set(uids), target)
    else:
        ctx.client.copy(uid_set(uids), target)
        ctx.client.add_flags(uid_set(uids), [b"\\Deleted", SEEN], silent=True)
        if ctx.client.has_capability("UIDPLUS"):
            ctx.client.uid_expunge(uid_set(uids))


def _locked_row(session, mailbox_id: int) -> Mailbox:
    """The mailbox row, locked FOR UPDATE on PostgreSQL (SQLite's BEGIN IMMEDIATE locks it all)."""
    row = session.execute(
        select(Mailbox).where(Mailbox.id == mailbox_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise MailboxGone(f"mailbox id {mailbox_id} no longer exists")
    return row


def _expect(row: Mailbox, checkpoint: Checkpoint) -> None:
    if (row.uidvalidity, row.last_uid) != (checkpoint.uidvalidity, checkpoint.last_uid):
        raise CheckpointMoved(
            f"mailbox {row.name!r}: checkpoint is ({row.uidvalidity}, {row.last_uid}), this pass "
            f"started from ({checkpoint.uidvalidity}, {checkpoint.last_uid})"
        )


def _mark_duplicates(ctx: SyncPass, session, items: list[Item]) -> None:
    """Old mail already stored by this mailbox (same SHA-256, or same Message-ID) is a duplicate;
    so is a second copy of one message within the old mail."""
    if not items:
        return
    digests: dict[int, str] = {}
    ids: dict[int, str | None] = {}
    for item in items:
        ids[item.uid] = item.message_id
        if not item.too_large:
            item.sha256 = item.sha256 or content_sha256(item.raw)
            digests[item.uid] = item.sha256
    wanted_ids = {v for v in ids.values() if v}
    conditions = []
    if digests:
        conditions.append(InboundMessage.sha256.in_(set(digests.values())))
    if wanted_ids:
        variants = wanted_ids | {f"<{v}>" for v in wanted_ids}
        conditions.append(InboundMessage.message_id.in_(variants))
    if not conditions:
        return
    known_digests: set[str] = set()
    known_ids: set[str] = set()
    for digest, message_id in session.execute(
        select(InboundMessage.sha256, InboundMessage.message_id).where(
            InboundMessage.source == ctx.config.source, or_(*conditions)
        )
    ):
        known_digests.add(digest)
        if message_id:
            known_ids.add(message_id.strip("<>"))
    for item in sorted(items, key=lambda i: i.uid):  # a second copy in this batch counts too
        digest, message_id = digests.get(item.uid), ids.get(item.uid)
        if digest in known_digests or (message_id and message_id in known_ids):
            item.duplicate = True
            continue
        if digest:
            known_digests.add(digest)
        if message_id:
            known_ids.add(message_id)


def _row(ctx: SyncPass, item: Item) -> dict:
    """The inbound row of ``item``: the downloaded message, or the record of one too large to
    download (see module docstring)."""
    if not item.too_large:
        return inbound_values(raw=item.raw, source=ctx.config.source, message_id=item.message_id,
                              sha256=item.sha256)
    headers = _parse_headers(item.headers or b"")
    sender = None
    for _, address in getaddresses([str(headers.get("From") or "")]):
        try:
            sender = parse_address(address).key[:320]  # as routing stores a sender
            break
        except InvalidAddress:
            continue
    subject = None
    if headers.get("Subject"):
        from routing.mailparse import decode_header_value

        subject = decode_header_value(headers.get("Subject"))
    limit = ctx.max_bytes
    reason = (
        f"not downloaded: the message is {item.size:,} bytes, over the limit of {limit:,} bytes "
        f"(TICKETPOST_SMTP_MAX_MESSAGE_BYTES); it stays in folder {ctx.config.folder!r} "
        f"(UID {item.uid}) with the keyword {TOO_LARGE_KEYWORD}"
    )
    return inbound_values(
        raw=b"",
        source=ctx.config.source,
        size=item.size,
        message_id=item.message_id,
        sender_email=sender,
        subject=subject,
        status="failed",
        outcome="failed",
        reason=reason,
        explanation=[{"step": "imap", "decision": reason}],
    )


def _parse_headers(raw: bytes):
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw[:end] if end >= 0 else raw[:65536]
    return BytesHeaderParser(policy=compat32).parsebytes(head)
