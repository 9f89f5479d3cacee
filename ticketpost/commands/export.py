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
    parser.set_defaults(func=run, needs_schema=True)


def run(args) -> int:
    import os
    import tempfile

    from sqlalchemy.exc import SQLAlchemyError

    from admin_api.services.exports import write_export
    from models.db import get_engine

    try:
        if args.output:
            # Written beside the target and renamed when complete: a failed export leaves no
            # file that looks like a whole one.
            folder = os.path.dirname(os.path.abspath(args.output))
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=folder,
                                             prefix=".export-", suffix=".csv", delete=False) as out:
                try:
                    write_export(engine=get_engine(), kind=args.kind, out=out)
                except BaseException:
                    out.close()
                    os.unlink(out.name)
                    raise
            os.replace(out.name, args.output)
        else:
            write_export(engine=get_engine(), kind=args.kind, out=sys.stdout)
            sys.stdout.flush()
    except SQLAlchemyError as exc:
        print(f"ticketpost export: the export failed and is incomplete: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0
