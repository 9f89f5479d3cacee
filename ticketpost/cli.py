"""The ``ticketpost`` command line: one sub-command per module in ``ticketpost/commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import ticketpost.commands as commands_pkg


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered by its module's ``register``."""
    parser = argparse.ArgumentParser(prog="ticketpost", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ticketpost.commands.{info.name}")
        module.register(sub)
    return parser


def _schema_problem() -> str | None:
    """Why the configured database cannot be used yet (unreachable, not migrated), or None.

    Checked before a command that reads or writes product tables and sets ``needs_schema``
    (``parser.set_defaults(needs_schema=True)``), so it answers with what to do instead of a
    driver traceback.
    """
    from models.db import get_engine
    from ticketpost.commands.api import schema_problem

    return schema_problem(get_engine())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    from ticketpost.logs import configure_logging

    configure_logging()
    args = build_parser().parse_args(argv)
    if getattr(args, "needs_schema", False):
        problem = _schema_problem()
        if problem:
            print(f"ticketpost {args.command}: {problem}", file=sys.stderr)
            return 2
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
