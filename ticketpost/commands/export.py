"""``ticketpost export clients|contacts``: write the data in template form (SPEC §8)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    parser = sub.add_parser(
        "export", help="export clients or contacts as CSV in template form",
        description="Write all clients or contacts as CSV in the import template's form; "
                    "importing the file again changes nothing.")
    parser.add_argument("kind", choices=("clients", "contacts"))
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(func=run)


def run(args) -> int:
    from admin_api.services.exports import export_csv
    from models.db import get_engine

    chunks = export_csv(engine=get_engine(), kind=args.kind)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            out.writelines(chunks)
    else:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0
