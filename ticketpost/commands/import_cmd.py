"""``ticketpost import clients|contacts FILE [--dry-run]``: bulk import a spreadsheet (SPEC §8).

Exit status 0 when the file was imported (or, with ``--dry-run``, would import cleanly), 1 when
any row is bad (then nothing was applied), 2 when the file or the database cannot be used.
"""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    parser = sub.add_parser(
        "import", help="import clients or contacts from a CSV file (all or nothing)",
        description="Import a clients.csv or contacts.csv file (see `ticketpost template`). A file "
                    "with any bad row changes nothing; every bad row is reported with its line "
                    "and column.")
    parser.add_argument("kind", choices=("clients", "contacts"))
    parser.add_argument("file", metavar="FILE", help="the CSV file, or - for standard input")
    parser.add_argument("--dry-run", action="store_true",
                        help="check and count, but change nothing")
    parser.add_argument("--allow-public-domain", "--allow-public-domains", action="store_true",
                        dest="allow_public_domains",
                        help="accept public mail providers such as gmail.com as client domains")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def _progress_bar(kind: str):
    """A tqdm bar over the file's bytes when stdout is a terminal, else None."""
    if not sys.stdout.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="B", unit_scale=True, desc=f"importing {kind}", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(max(done - bar.n, 0))

    return bar, update


def run(args) -> int:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from admin_api.services.imports import import_file
    from models.db import get_engine, session_factory

    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"cannot open {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    bar, progress = _progress_bar(args.kind)
    try:
        with source, session_factory(get_engine())() as session:
            report = import_file(session=session, kind=args.kind, source=source,
                                 dry_run=args.dry_run,
                                 allow_public_domains=args.allow_public_domains,
                                 progress=progress)
            if report.applied:
                session.commit()
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        print(f"the database cannot be used: {reason} (is it reachable, and did "
              "`ticketpost migrate` run?); nothing was applied", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(describe(report, args.file))
    return 1 if report.errors else 0


def describe(report, name: str) -> str:
    """The report in words: counts, whether anything was applied, then one line per error."""
    counts = f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged"
    if report.errors:
        lines = [(f"{name}: {len(report.errors)} error(s); nothing was applied "
                  f"(the valid rows would give {counts})")]
        for error in report.errors:
            where = f"line {error.row}" + (f", column {error.column}" if error.column else "")
            lines.append(f"  {where}: {error.message}")
        return "\n".join(lines)
    if report.dry_run:
        return f"{name}: dry run, nothing was applied; importing would give {counts}"
    return f"{name}: imported {report.kind}: {counts}"
