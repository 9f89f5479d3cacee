"""``ticketpost mailbox add|list|remove|authorize``: the mailboxes ticketpost polls.

No secret is taken from the command line itself (it would show in ``ps`` and shell history): the
password is asked for on a terminal, or read from standard input (``--password-stdin``) or from an
environment variable (``--password-env NAME``); an OAuth2 client secret from
``--client-secret-env VAR`` or ``--client-secret-file PATH`` (Google: the service account's JSON
key), a refresh token from ``--refresh-token-env VAR``. Secrets are stored encrypted with
``TICKETPOST_SECRET_KEY``; without that key ``add`` refuses and says so.

``authorize ID`` runs the OAuth2 device-code flow for a delegated (``refresh_token``) mailbox:
it prints the code and the URL where a person signs in, waits for the consent, and stores the
refresh token (encrypted).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime, timezone


def register(sub) -> None:
    parser = sub.add_parser("mailbox", help="add, list or remove IMAP mailboxes to poll")
    parser.set_defaults(needs_schema=True)
    actions = parser.add_subparsers(dest="mailbox_action", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help="add a mailbox (by default it takes in mail arriving from now on)",
        description="Add an IMAP mailbox. By default only mail that arrives after it is added "
        "becomes tickets; --since DATE also takes in what arrived since DATE.",
    )
    add.add_argument("name", help="a unique name; inbound messages get the source imap:NAME "
                     "(graph:NAME for a graph mailbox)")
    add.add_argument("--kind", choices=("imap", "graph"), default="imap",
                     help="imap (default) or graph (Microsoft Graph)")
    add.add_argument("--auth", choices=("password", "oauth2"), default=None,
                     help="default: password for imap, oauth2 for graph or when --provider is given")
    add.add_argument("--host", default=None, help="IMAP server (imap mailboxes)")
    add.add_argument("--port", type=int, default=None, help="default 993 (ssl) or 143")
    add.add_argument("--security", choices=("ssl", "starttls", "none"), default="ssl")
    add.add_argument("--username", default=None, help="IMAP login (imap mailboxes)")
    add.add_argument("--user", default=None, help="graph: the mailbox's UPN or id")
    add.add_argument("--graph-base-url", default=None,
                     help="graph: host override, without /v1.0 (national clouds, tests)")
    oauth = add.add_argument_group("OAuth2 (auth oauth2)")
    oauth.add_argument("--provider", choices=("microsoft", "google", "generic"), default=None)
    oauth.add_argument("--tenant-id", default=None, help="microsoft: directory id or domain")
    oauth.add_argument("--client-id", default=None, help="the application (client) id")
    oauth.add_argument("--client-secret-env", metavar="VAR", default=None,
                       help="read the client secret from environment variable VAR")
    oauth.add_argument("--client-secret-file", metavar="PATH", default=None,
                       help="read the client secret from a file (Google: the service account's JSON key)")
    oauth.add_argument("--scope", default=None, help="default: the provider's for the kind")
    oauth.add_argument("--grant", choices=("client_credentials", "refresh_token", "service_account"),
                       default=None, help="default client_credentials (microsoft, generic), "
                       "refresh_token (google)")
    oauth.add_argument("--refresh-token-env", metavar="VAR", default=None,
                       help="read a refresh token from environment variable VAR "
                       "(or run `ticketpost mailbox authorize ID` afterwards)")
    oauth.add_argument("--authority-url", default=None, help="login host override (national clouds)")
    oauth.add_argument("--token-url", default=None, help="the whole token endpoint (wins)")
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

    authorize = actions.add_parser(
        "authorize", help="sign a person in with the device-code flow and store the refresh token",
        description="For an auth oauth2 mailbox with the delegated grant: prints a code and a URL; "
        "the mailbox's owner opens the URL, enters the code and consents; the refresh token is "
        "then stored encrypted and the poller uses it.",
    )
    authorize.add_argument("mailbox", help="name or id")
    authorize.set_defaults(func=run_authorize)


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


def _oauth2_settings(args) -> dict | None:
    """The ``oauth2`` object from the command line (secrets from the environment or a file)."""
    if args.provider is None:
        return None
    secret = None
    if args.client_secret_env:
        secret = os.environ.get(args.client_secret_env)
    elif args.client_secret_file:
        with open(args.client_secret_file, encoding="utf-8") as handle:
            secret = handle.read().strip()
    values = {
        "provider": args.provider, "tenant_id": args.tenant_id, "client_id": args.client_id,
        "client_secret": secret, "scope": args.scope, "grant": args.grant,
        "refresh_token": os.environ.get(args.refresh_token_env) if args.refresh_token_env else None,
        "authority_url": args.authority_url, "token_url": args.token_url,
    }
    return {k: v for k, v in values.items() if v is not None}


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
    oauth2 = _oauth2_settings(args)
    oauth = args.auth == "oauth2" or (args.auth is None and (oauth2 or args.kind == "graph"))
    password = None
    if not oauth:
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
                kind=args.kind,
                auth=args.auth,
                host=args.host,
                port=args.port,
                security=args.security,
                username=args.username,
                password=password,
                oauth2=oauth2,
                user=args.user,
                graph_base_url=args.graph_base_url,
                folder=args.folder,
                processed_folder=args.processed_folder,
                enabled=not args.disabled,
                since=args.since,
                secret_key=settings.secret_key,
            )
            summary = _summary(mailbox)
    except (ServiceError, SecretKeyMissing, OSError) as exc:
        print(f"ticketpost mailbox: {exc}", file=sys.stderr)
        return 2
    since = "mail arriving from now on" if args.since is None else \
        f"mail since {summary['since']}"
    where = f"graph user {summary['username']}" if summary["kind"] == "graph" else \
        f"{summary['username']}@{summary['host']}:{summary['port']} {summary['security']}"
    print(f"mailbox {summary['id']} {summary['name']!r} added ({where}, auth {summary['auth']}, "
          f"folder {summary['folder']}); it takes in {since}")
    if summary["auth"] == "oauth2" and summary["grant"] == "refresh_token" \
            and not summary["has_refresh_token"]:
        print(f"next: `ticketpost mailbox authorize {summary['id']}` to sign in and store a "
              "refresh token")
    return 0


def run_authorize(args) -> int:
    from admin_api.services.errors import NotFound, ServiceError
    from admin_api.services.mailboxes import get_mailbox, store_refresh_token
    from core.settings import get_settings
    from models.oauth2 import AuthFailed, OAuth2Config, TokenUnavailable, poll_device_flow, \
        start_device_flow
    from models.db import get_engine, session_scope

    settings = get_settings()
    engine = get_engine()
    key = args.mailbox
    try:
        with session_scope(engine) as session:
            mailbox = get_mailbox(session, mailbox_id=int(key)) if key.isdigit() else \
                get_mailbox(session, name=key)
            if mailbox.auth != "oauth2":
                print(f"ticketpost mailbox: {mailbox.name!r} does not log in with OAuth2",
                      file=sys.stderr)
                return 2
            config = OAuth2Config.of(mailbox)
        code = start_device_flow(config, settings=settings)
        print(code.message or f"To sign in, open {code.verification_uri} and enter the code "
              f"{code.user_code}", flush=True)
        print(f"code: {code.user_code}\nurl:  {code.verification_uri}\nwaiting for consent ...",
              flush=True)
        refresh_token = poll_device_flow(config, code, settings=settings,
                                         secret_key=settings.secret_key)
        with session_scope(engine) as session:
            store_refresh_token(session, mailbox_id=config.mailbox_id, refresh_token=refresh_token,
                                secret_key=settings.secret_key)
    except (NotFound, ServiceError, AuthFailed, TokenUnavailable) as exc:
        print(f"ticketpost mailbox: {exc}", file=sys.stderr)
        return 1
    print(f"mailbox {key!r} authorized: refresh token stored; the poller uses it from now on")
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
        if r["auth_error"]:
            health = f"AUTH_FAILED: {r['auth_error']}"
        elif r["consecutive_failures"]:
            health = f"FAILING x{r['consecutive_failures']} since {r['last_error_at']}: " \
                     f"{r['last_error']}"
        elif r["last_success_at"]:
            health = f"ok, last success {r['last_success_at']}"
        else:
            health = "not polled yet"
        if r["kind"] == "graph":  # no IMAP host, port or UIDs: the user and its Graph host
            print(f"{r['id']}\t{r['name']}\tgraph {r['username']} at {r['host']}\t"
                  f"{r['folder']}{after}\t{state}\t{health}")
            continue
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
        "kind": mailbox.kind or "imap",
        "auth": mailbox.auth or "password",
        "grant": mailbox.oauth2_grant,
        "has_refresh_token": mailbox.oauth2_refresh_token_encrypted is not None,
        "auth_error": mailbox.auth_error,
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
