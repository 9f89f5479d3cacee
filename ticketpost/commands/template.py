"""``ticketpost template clients|contacts``: print an empty spreadsheet template (SPEC §8)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    parser = sub.add_parser(
        "template", help="print the empty clients.csv or contacts.csv template",
        description="Print the header line of a bulk import template; fill it in a spreadsheet "
                    "and import it with `ticketpost import`.")
    parser.add_argument("kind", choices=("clients", "contacts"))
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(func=run)


def run(args) -> int:
    from admin_api.services.import_templates import template_csv

    text = template_csv(args.kind)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
