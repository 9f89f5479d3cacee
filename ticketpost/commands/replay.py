"""``ticketpost replay``: route stored inbound messages again, by id or by filter.

``ticketpost replay 17 18``, ``ticketpost replay --status failed``,
``ticketpost replay --outcome failed --since 2h``, ``ticketpost replay --since 2026-11-01
--until 2026-11-02``. With no id and no filter every ``failed`` message is replayed. What replay
does to each message (failed ones are reset, routed ones are left alone) is decided once in
``routing.replay``.

Where the routing happens: with REDIS_URL set the messages are handed to the worker processes
(this command prints their ids; ``ticketpost status`` or ``GET /api/v1/inbound/{id}`` shows the
outcome). In the embedded mode the queue lives inside the running ``ticketpost up`` and cannot be
reached from here, so this command routes the replayed messages itself, at once, and prints each
outcome (routing is idempotent, so a sweeper doing the same at the same time creates nothing
twice).
"""

from __future__ import annotations

import re
import sys
from datetime import date, datetime, timedelta, timezone

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class BadTime(ValueError):
    """Raised when a --since/--until value is neither ISO 8601 nor a duration like ``2h``."""


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ISO 8601 (naive = UTC; a date = its midnight) or ``30m``/``2h``/
    ``7d`` meaning that long ago."""
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        return now - timedelta(**{_UNITS[unit]: amount})
    text = value.strip()
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadTime(
            f"{value!r} is not a time: use ISO 8601 (2026-11-27, 2026-11-27T14:00:00Z) "
            "or a duration ago (30m, 2h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def register(sub) -> None:
    from models.inbound import OUTCOMES

    parser = sub.add_parser(
        "replay",
        help="route stored inbound messages again (default: every failed one)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="inbound message ids")
    parser.add_argument("--status", choices=("failed", "received", "routed"))
    parser.add_argument("--outcome", choices=OUTCOMES)
    parser.add_argument("--since", help="received at or after (ISO 8601, or 30m/2h/7d ago)")
    parser.add_argument("--until", help="received before (ISO 8601, or 30m/2h/7d ago)")
    parser.set_defaults(func=run, needs_schema=True)


def run(args) -> int:
    from models.db import get_engine
    from routing.replay import InvalidReplayFilter, replay_report
    from core.settings import get_settings

    settings = get_settings()
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except BadTime as exc:
        print(f"ticketpost replay: {exc}", file=sys.stderr)
        return 2
    engine = get_engine(settings.database_url)
    try:
        report = replay_report(
            inbound_ids=args.ids or None,
            status=args.status,
            outcome=args.outcome,
            since=since,
            until=until,
            engine=engine,
        )
    except InvalidReplayFilter as exc:
        print(f"ticketpost replay: {exc}", file=sys.stderr)
        return 2

    if not report.replayed:
        print("nothing to replay: no failed or unrouted message matches")
    elif settings.redis_url:
        print(f"handed {len(report.replayed)} message(s) to the workers: {_ids(report.replayed)}")
        if report.not_enqueued:
            print(
                f"  the broker did not take {_ids(report.not_enqueued)}; they are stored as "
                "unrouted and the sweeper hands them over when it is back"
            )
    else:
        print(f"routing {len(report.replayed)} message(s) here (embedded mode):")
        _route_here(report.replayed, engine=engine, settings=settings)
    if report.skipped_routed:
        print(f"left alone, already routed: {_ids(report.skipped_routed)}")
    if report.skipped_not_downloaded:
        print(f"left alone, never downloaded (too large): {_ids(report.skipped_not_downloaded)}")
    if report.missing:
        print(f"not found: {_ids(report.missing)}", file=sys.stderr)
        return 1
    return 0


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)


def _route_here(ids: list[int], *, engine, settings) -> None:
    from routing.pipeline import route_inbound

    for inbound_id in ids:
        try:
            result = route_inbound(inbound_id, engine=engine, settings=settings)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next id
            print(f"  {inbound_id}: routing raised {type(exc).__name__}: {exc}")
            continue
        outcome = getattr(result, "outcome", None)
        reason = getattr(result, "reason", None)
        print(f"  {inbound_id}: {outcome}" + (f" ({reason})" if reason else ""))
