"""``ticketpost token create|list|revoke``: API tokens from the command line (printed once)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    parser = sub.add_parser("token", help="create, list or revoke admin API tokens")
    actions = parser.add_subparsers(dest="token_action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", choices=("admin", "technician"), required=True)
    create.add_argument("--name", required=True, help="who or what uses the token")
    create.set_defaults(func=run_create)

    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(func=run_list)

    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=run_revoke)


def _schema_problem() -> str | None:
    from models.db import get_engine
    from ticketpost.commands.api import schema_problem

    return schema_problem(get_engine())


def run_create(args) -> int:
    from admin_api.services.errors import ServiceError
    from admin_api.services.tokens import create_token
    from models.db import get_engine, session_scope

    problem = _schema_problem()
    if problem:
        print(f"ticketpost token: {problem}", file=sys.stderr)
        return 2
    try:
        with session_scope(get_engine()) as session:
            issued = create_token(session, name=args.name, role=args.role)
            token_id = issued.token.id
    except ServiceError as exc:
        print(f"ticketpost token: {exc}", file=sys.stderr)
        return 2
    print(issued.secret)
    print(
        f"token {token_id} ({args.role}, {args.name!r}) created; it is shown only now, "
        "the database keeps only its SHA-256",
        file=sys.stderr,
    )
    return 0


def run_list(args) -> int:
    from admin_api.services.tokens import list_tokens
    from models.db import get_engine, session_scope

    problem = _schema_problem()
    if problem:
        print(f"ticketpost token: {problem}", file=sys.stderr)
        return 2
    with session_scope(get_engine()) as session:
        page = list_tokens(session, limit=500, offset=0)
        for t in page.items:
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            print(f"{t.id}\t{t.role}\t{t.name}\t{state}\tlast used {used}")
    return 0


def run_revoke(args) -> int:
    from admin_api.services.errors import NotFound
    from admin_api.services.tokens import revoke_token
    from models.db import get_engine, session_scope

    try:
        with session_scope(get_engine()) as session:
            revoke_token(session, token_id=args.id)
    except NotFound as exc:
        print(f"ticketpost token: {exc}", file=sys.stderr)
        return 1
    print(f"token {args.id} revoked")
    return 0
