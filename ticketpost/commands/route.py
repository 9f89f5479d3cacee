"""``ticketpost route FILE.eml``: store one message file, route it now, print the decision."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser(
        "route",
        help="store and route one message file synchronously; print its outcome",
        description="Store FILE.eml as an inbound message (source 'cli'), route it right away and "
        "print the outcome, the reason, the ticket and each step's decision. Use '-' for stdin.",
    )
    parser.add_argument("file", metavar="FILE.eml", help="a raw RFC 5322 message ('-' reads stdin)")
    parser.add_argument("--envelope-from", default=None,
                        help="the SMTP envelope sender to record ('' or '<>' for a bounce)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ingest.store import store_inbound
    from models.db import get_engine
    from routing.pipeline import route_inbound
    from core.settings import get_settings

    if args.file == "-":
        raw = sys.stdin.buffer.read()
    else:
        path = Path(args.file)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            print(f"ticketpost route: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    settings = get_settings()
    engine = get_engine(settings.database_url)
    if settings.is_sqlite:
        from models.db import migrate

        migrate(settings.database_url)  # the embedded database is created on first use
    inbound_id = store_inbound(raw=raw, source="cli", envelope_from=args.envelope_from, engine=engine)
    result = route_inbound(inbound_id, engine=engine, settings=settings)
    if args.json:
        import dataclasses
        import json

        print(json.dumps(dataclasses.asdict(result), ensure_ascii=False))
        return 0
    print(f"inbound: {result.inbound_id}")
    print(f"outcome: {result.outcome}")
    print(f"reason:  {result.reason}")
    if result.ticket_number is not None:
        print(f"ticket:  #{result.ticket_number}")
    else:
        print("ticket:  none")
    print("explanation:")
    for entry in result.explanation:
        print(f"  {entry['step']:<11} {entry['decision']}")
    return 0
