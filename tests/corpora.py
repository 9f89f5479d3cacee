"""The real-world mail corpora (``../shared/corpora``): where they are, their files, and a second opinion.

The corpora are test data nobody on this project wrote; they are read where they are, never
copied into the repository. ``TICKETPOST_CORPORA`` names their directory; otherwise it is
``shared/corpora`` beside the repository's root (for a git worktree, beside the main checkout's
root too). Missing corpora skip the test, or fail it under ``TICKETPOST_REQUIRE_SERVICES=1``.

:func:`stdlib_view` reads a file with the standard library's ``policy.default`` parser, which
shares no code with ``routing.mailparse``: the tests compare routing's decisions with what that
independent reading finds (the SPEC §3 bounce signals, the From addresses, the text, the files).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Client, ClientDomain, TicketMessage
from models.addresses import InvalidAddress, parse_address
from tests.conftest import service_missing

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("bounces", "auto_replies", "customer")


def _checkout_roots() -> list[Path]:
    """The repository root, and for a git worktree the main checkout's root as well."""
    roots = [REPO]
    dot_git = REPO / ".git"
    if dot_git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text.split(":", 1)[1].strip())
            common = gitdir / "commondir"
            main_git = (gitdir / common.read_text().strip()).resolve() if common.is_file() else gitdir.parents[1]
            roots.append(main_git.parent)
    return roots


def corpora_dir() -> Path:
    """The corpora's directory; skips (or fails, when services are required) without it."""
    configured = os.environ.get("TICKETPOST_CORPORA")
    candidates = [Path(configured)] if configured else [root.parent / "shared" / "corpora" for root in _checkout_roots()]
    for candidate in candidates:
        if all((candidate / folder).is_dir() for folder in FOLDERS):
            return candidate
    service_missing("the real-world mail corpora", f"none of {', '.join(map(str, candidates))} holds {FOLDERS}")
    raise AssertionError("unreachable")


def corpus_files(folder: str) -> list[Path]:
    """The mail files of one folder, sorted (its README.md and MANIFEST.tsv left out)."""
    return sorted(p for p in (corpora_dir() / folder).iterdir()
                  if p.is_file() and p.name not in ("README.md", "MANIFEST.tsv"))


def delivered_bytes(path: Path) -> bytes:
    """The file as a forwarder delivers it: without an mbox ``From sender date`` line on top."""
    raw = path.read_bytes()
    if raw.startswith(b"From "):
        raw = raw[raw.find(b"\n") + 1:]
    return raw


# --- the standard library's reading ---------------------------------------------------------------

_DAEMONS = ("mailer-daemon", "postmaster")
_WORD = re.compile(r"[^\W\d_]{5,}")
_TAG = re.compile(r"<[^>]*>")


@dataclass
class StdlibView:
    """What ``email.message_from_bytes(policy=default)`` finds in one message."""

    bounce_signals: list[str] = field(default_factory=list)
    from_addresses: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)  # words of its text parts (5+ letters)
    files: int = 0  # parts a reader sees as files


def _own_parts(message: EmailMessage):
    """Every MIME part of the message's own tree; attached messages are not entered."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
            stack.extend(reversed(part.get_payload()))


def _local(address: str) -> str:
    return address.strip().strip("<>").rpartition("@")[0].lower() if "@" in address else address.strip().lower()


def stdlib_view(raw: bytes) -> StdlibView:
    """The SPEC §3 bounce signals, From addresses, text words and files the stdlib finds in ``raw``."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    view = StdlibView()
    parts = list(_own_parts(message))
    ctypes = {p.get_content_type() for p in parts}
    if ctypes & {"message/delivery-status", "message/global-delivery-status"}:
        view.bounce_signals.append("a message/delivery-status part")
    if message.get_content_type() == "multipart/report" and \
            (message.get_param("report-type") or "").lower() == "delivery-status":
        view.bounce_signals.append("report-type=delivery-status")
    for value in message.get_all("Return-Path") or []:
        value = str(value).strip()
        if re.fullmatch(r"<\s*>", value):
            view.bounce_signals.append("Return-Path: <>")
        elif _local(value) in _DAEMONS:
            view.bounce_signals.append(f"Return-Path {value}")
    try:
        header = message["From"]
        addresses = list(header.addresses) if header is not None else []
    except Exception:  # noqa: BLE001 - a From the stdlib cannot read
        header, addresses = None, []
    for address in addresses:
        if address.username and address.domain:
            view.from_addresses.append(f"{address.username}@{address.domain}")
            if address.username.lower() in _DAEMONS:
                view.bounce_signals.append(f"From {address.username}@{address.domain}")
    if header is not None and re.search(r"<\s*>", str(header)) and not view.from_addresses:
        view.bounce_signals.append("From with an empty address")
    for part in parts:
        if part.get_content_type() == "message/rfc822":  # a forwarded message is one file
            view.files += 1
            continue
        if part.is_multipart():
            continue
        filename = part.get_filename()
        is_text = part.get_content_type() in ("text/plain", "text/html")
        if filename and not (is_text and part.get_content_disposition() == "inline"):
            view.files += 1
        elif is_text and part.get_content_disposition() != "attachment":
            try:
                text = part.get_content()
            except Exception:  # noqa: BLE001 - undecodable: no words from this part
                continue
            view.words += _WORD.findall(_TAG.sub(" ", text)[:20000])
    return view


FORWARDER = "support-forward@mailbox.msp.example"
TICKETED = ("ticket_created", "ticket_updated", "triaged")
#: Header signals of automatic mail (SPEC §3 ignored_auto_reply), as the stdlib reads them.
AUTO_HEADERS = ("auto-submitted", "precedence", "x-autoreply", "x-autorespond", "x-auto-response-suppress",
                "x-autogenerated", "x-mail-autoreply", "x-autoreply-from", "x-autorespond-from")


def usable(address: str) -> bool:
    """Whether the product's one address rule (models.addresses) accepts ``address``."""
    try:
        parse_address(address)
    except InvalidAddress:
        return False
    return True


def register_client(engine, views) -> None:
    """One client owning every domain the folder's From addresses use."""
    domains = set()
    for view in views.values():
        for address in view.from_addresses:
            try:
                domains.add(parse_address(address).domain)
            except InvalidAddress:
                continue
    with Session(engine) as session, session.begin():
        client = Client(name="Corpus senders")
        session.add(client)
        session.flush()
        session.add_all(ClientDomain(client_id=client.id, domain=d) for d in sorted(domains))


# --- what each folder's README asks -----------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    """What routing decided for one corpus file."""

    outcome: str
    reason: str
    inbound_id: int


def summary(routed: dict[str, Routed]) -> str:
    """``outcome count`` pairs, sorted: the per-folder figures."""
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.outcome for r in routed.values()).items()))


def folder_problems(folder: str, engine, raws: dict[str, bytes], views: dict[str, StdlibView],
                    routed: dict[str, Routed]) -> list[str]:
    """Where routing did not do what the folder's README asks, one line per message."""
    problems: list[str] = []
    for name, result in routed.items():
        view = views[name]
        if view.bounce_signals and result.outcome != "ignored_bounce":
            problems.append(f"{name}: {result.outcome} despite {view.bounce_signals[0]} ({result.reason})")
        if folder == "bounces" and not result.outcome.startswith("ignored_"):
            problems.append(f"bounce {name} became {result.outcome}: {result.reason}")
        if folder == "auto_replies" and result.outcome not in ("ignored_auto_reply", "ignored_bounce"):
            problems.append(f"automatic reply {name} became {result.outcome}: {result.reason}")
    if folder == "customer":
        problems += customer_problems(engine, raws, views, routed)
    return problems


def customer_problems(engine, raws, views, results) -> list[str]:
    """What went wrong with the customer folder's mail, one line per message."""
    problems = []
    with Session(engine) as session:
        messages = {m.inbound_id: m for m in session.scalars(select(TicketMessage))}
    for name, result in results.items():
        view = views[name]
        outcome = result.outcome
        if outcome == "failed":
            problems.append(f"{name} failed: {result.reason}")
        elif outcome == "rejected_invalid_sender" and any(usable(a) for a in view.from_addresses):
            problems.append(f"{name}: {result.reason}, but the stdlib reads From {view.from_addresses}")
        elif outcome == "ignored_bounce" and not view.bounce_signals:
            problems.append(f"{name} taken for a bounce without a SPEC signal: {result.reason}")
        elif outcome == "ignored_auto_reply" and not _has_auto_header(raws[name]):
            problems.append(f"{name} taken for an automatic reply without a header saying so: {result.reason}")
        elif outcome not in (*TICKETED, "ignored_duplicate", "ignored_auto_reply", "ignored_bounce",
                             "rejected_invalid_sender"):
            problems.append(f"{name}: unexpected {outcome}: {result.reason}")
        if outcome not in TICKETED:
            continue
        message = messages[result.inbound_id]
        words = list(dict.fromkeys(w.lower() for w in view.words))[:40]
        text = message.body_text.lower()
        if words and not any(w in text for w in words):
            problems.append(f"{name}: the ticket lost the text (none of {words[:8]} in {message.body_text[:120]!r})")
        if len(message.attachments) < view.files:
            problems.append(f"{name}: {len(message.attachments)} attachments listed, the mail has {view.files} files")
    return problems


def _has_auto_header(raw: bytes) -> bool:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    for name in AUTO_HEADERS:
        value = (message.get(name) or "").strip().lower()
        if name == "precedence":
            if value in ("bulk", "junk", "list", "auto_reply"):
                return True
        elif value and not (name == "auto-submitted" and value.startswith("no")) and value not in ("none", "no", "false"):
            return True
    return False
