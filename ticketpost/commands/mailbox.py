"""``ticketpost mailbox add|list|remove``: the IMAP mailboxes ticketpost polls.

The password is never taken from the command line itself (it would show in ``ps`` and shell
history): it is asked for on a terminal, or read from standard input (``--password-stdin``) or
from an environment variable (``--password-env NAME``). It is stored encrypted with
``TICKETPOST_SECRET_KEY``; without that key ``add`` refuses and says so.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime, timezone


def register(sub) -> None:
    parser = sub.add_parser("mailbox", help="add, list or remove IMAP mailboxes to poll")
    actions = parser.add_subparsers(dest="mailbox_action", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help="add a mailbox (by default it takes in mail arriving from now on)",
        description="Add an IMAP mailbox. By default only mail that arrives after it is added "
        "becomes tickets; --since DATE also takes in what arrived since DATE.",
    )
    add.add_argument("name", help="a unique name; inbound messages get the source imap:NAME")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=int, default=None, help="default 993 (ssl) or 143")
    add.add_argument("--security", choices=("ssl", "starttls", "none"), default="ssl")
    add.add_argument("--username", required=True)
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (first line)")
    secret.add_argument("--password-env", metavar="VAR",
                        help="read the password from environment variable VAR")
    add.add_argument("--folder", default="INBOX")
    add.add_argument("--processed-folder", default=None,
                     help="move taken-in mail here (default: flag it \\Seen and leave it)")
    add.add_argument("--since", type=_parse_since, default=None, metavar="DATE",
                     help="also take in mail that arrived since DATE (YYYY-MM-DD or ISO 8601)")
    add.add_argument("--disabled", action="store_true", help="add it without polling it yet")
    add.set_defaults(func=run_add)

    listing = actions.add_parser("list", help="list mailboxes with their checkpoint and health")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=run_list)

    remove = actions.add_parser("remove", help="remove a mailbox (mail already taken in stays)")
    remove.add_argument("mailbox", help="name or id")
    remove.set_defaults(func=run_remove)


def _parse_since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: use YYYY-MM-DD or an ISO 8601 date and time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _read_password(args) -> str | None:
    if args.password_env:
        return os.environ.get(args.password_env)
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        return getpass.getpass(f"IMAP password for {args.username}@{args.host}: ")
    return None


def run_add(args) -> int:
    from admin_api.services.errors import ServiceError
    from admin_api.services.mailboxes import create_mailbox
    from models.db import get_engine, session_scope
    from models.secrets import SecretKeyMissing
    from core.settings import get_settings

    settings = get_settings()
    if not settings.secret_key:
        print(f"ticketpost mailbox: {SecretKeyMissing()}", file=sys.stderr)
        return 2
    password = _read_password(args)
    if not password:
        where = f"environment variable {args.password_env}" if args.password_env else \
            "--password-stdin, --password-env VAR or a terminal prompt"
        print(f"ticketpost mailbox: no password given (use {where})", file=sys.stderr)
        return 2
    try:
        with session_scope(get_engine()) as session:
            mailbox = create_mailbox(
                session,
                name=args.name,
                host=args.host,
                port=args.port,
                security=args.security,
                username=args.username,
                password=password,
                folder=args.folder,
                processed_folder=args.processed_folder,
                enabled=not args.disabled,
                since=args.since,
                secret_key=settings.secret_key,
            )
            summary = _summary(mailbox)
    except (ServiceError, SecretKeyMissing) as exc:
        print(f"ticketpost mailbox: {exc}", file=sys.stderr)
        return 2
    since = "mail arriving from now on" if args.since is None else \
        f"mail since {summary['since']}"
    print(f"mailbox {summary['id']} {summary['name']!r} added "
          f"({summary['username']}@{summary['host']}:{summary['port']} {summary['security']}, "
          f"folder {summary['folder']}); it takes in {since}")
    return 0


def run_list(args) -> int:
    from admin_api.services.mailboxes import list_mailboxes
    from models.db import get_engine, session_scope

    with session_scope(get_engine()) as session:
        rows = [_summary(m) for m in list_mailboxes(session, limit=500, offset=0).items]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("no mailboxes (add one with `ticketpost mailbox add`)")
        return 0
    for r in rows:
        state = "enabled" if r["enabled"] else "disabled"
        after = f" -> {r['processed_folder']}" if r["processed_folder"] else " (flag \\Seen)"
        if r["consecutive_failures"]:
            health = f"FAILING x{r['consecutive_failures']} since {r['last_error_at']}: " \
                     f"{r['last_error']}"
        elif r["last_success_at"]:
            health = f"ok, last success {r['last_success_at']}"
        else:
            health = "not polled yet"
        print(f"{r['id']}\t{r['name']}\t{r['username']}@{r['host']}:{r['port']} {r['security']}\t"
              f"{r['folder']}{after}\t{state}\tlast UID {r['last_uid']} "
              f"(UIDVALIDITY {r['uidvalidity']})\t{health}")
    return 0


def run_remove(args) -> int:
    from admin_api.services.errors import NotFound
    from admin_api.services.mailboxes import delete_mailbox
    from models.db import get_engine, session_scope

    key = args.mailbox
    try:
        with session_scope(get_engine()) as session:
            if key.isdigit():
                try:
                    delete_mailbox(session, mailbox_id=int(key))
                except NotFound:
                    delete_mailbox(session, name=key)
            else:
                delete_mailbox(session, name=key)
    except NotFound as exc:
        print(f"ticketpost mailbox: {exc}", file=sys.stderr)
        return 1
    print(f"mailbox {key!r} removed; messages already taken in stay")
    return 0


def _summary(mailbox) -> dict:
    """The mailbox as plain data (never its password)."""
    from admin_api.services.mailboxes import default_port

    def iso(value):
        return value.isoformat() if value else None

    return {
        "id": mailbox.id,
        "name": mailbox.name,
        "host": mailbox.host,
        "port": mailbox.port or default_port(mailbox.security),
        "security": mailbox.security,
        "username": mailbox.username,
        "folder": mailbox.folder,
        "processed_folder": mailbox.processed_folder,
        "enabled": mailbox.enabled,
        "since": iso(mailbox.since),
        "uidvalidity": mailbox.uidvalidity,
        "last_uid": mailbox.last_uid,
        "last_success_at": iso(mailbox.last_success_at),
        "last_error": mailbox.last_error,
        "last_error_at": iso(mailbox.last_error_at),
        "consecutive_failures": mailbox.consecutive_failures or 0,
    }
