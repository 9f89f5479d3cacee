"""Replay: hand stored inbound messages to routing again (after a fault, or a lost hand-over).

What replay means, decided here once for the admin API and ``ticketpost replay``:

* A ``failed`` message is reset to ``received`` (outcome, reason and explanation cleared; the raw
  bytes and the attempt count kept) and re-enqueued. Its next routing is a fresh decision.
* A message still ``received`` (never routed: a lost hand-over, a crash) is re-enqueued as is.
* A ``routed`` message is left alone and reported as skipped: routing is idempotent, its outcome
  stands. (To re-decide a rejected message after fixing data, deliver it again.)
* A record whose raw bytes were never downloaded (an IMAP message over the size limit: empty raw,
  real size) is left alone and reported as not downloaded: there is nothing to route, and a
  reset would erase the reason that says why.
* Unknown ids are reported as missing.

The reset is committed before the hand-over; if the broker is down the message stays
``received`` and the sweeper hands it over later, so a replay is never lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from models import InboundMessage
from models.db import session_scope

log = logging.getLogger(__name__)

#: Statuses a replay hands over again.
REPLAYABLE_STATUSES = ("failed", "received")


@dataclass
class ReplayReport:
    """What one replay did: ids handed over, ids left alone because routed, ids not found."""

    replayed: list[int] = field(default_factory=list)
    skipped_routed: list[int] = field(default_factory=list)
    skipped_not_downloaded: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    not_enqueued: list[int] = field(default_factory=list)


class InvalidReplayFilter(ValueError):
    """Raised when a replay filter names an unknown status."""


def replay_report(
    *,
    inbound_ids: list[int] | None = None,
    status: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    engine: Engine | None = None,
) -> ReplayReport:
    """Select inbound messages by ids and/or filters, reset the failed ones, re-enqueue; report.

    With neither ids nor any filter, every ``failed`` message is replayed.
    ``not_enqueued`` lists replayed ids whose hand-over failed (broker down): they are
    ``received`` now and the sweeper will hand them over.
    """
    from routing.broker import enqueue

    if status is not None and status not in ("received", "routed", "failed"):
        raise InvalidReplayFilter(f"unknown status {status!r}: use received, routed or failed")
    if inbound_ids is None and status is None and outcome is None and since is None \
            and until is None:
        status = "failed"

    report = ReplayReport()
    query = select(
        InboundMessage.id,
        InboundMessage.status,
        ((func.length(InboundMessage.raw) == 0) & (InboundMessage.size > 0)).label("stub"),
    ).order_by(InboundMessage.id)
    if inbound_ids is not None:
        query = query.where(InboundMessage.id.in_([int(i) for i in inbound_ids]))
    if status is not None:
        query = query.where(InboundMessage.status == status)
    if outcome is not None:
        query = query.where(InboundMessage.outcome == outcome)
    if since is not None:
        query = query.where(InboundMessage.received_at >= since)
    if until is not None:
        query = query.where(InboundMessage.received_at < until)

    with session_scope(engine) as session:
        rows = session.execute(query).all()
        found = {row.id for row in rows}
        if inbound_ids is not None:
            report.missing = [int(i) for i in inbound_ids if int(i) not in found]
        for row in rows:
            if row.stub:
                report.skipped_not_downloaded.append(row.id)
            elif row.status in REPLAYABLE_STATUSES:
                report.replayed.append(row.id)
            else:
                report.skipped_routed.append(row.id)
        replayed = set(report.replayed)
        failed = [row.id for row in rows if row.status == "failed" and row.id in replayed]
        if failed:
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id.in_(failed), InboundMessage.status == "failed")
                .values(status="received", outcome=None, reason=None, explanation=[])
            )

    for inbound_id in report.replayed:
        if not enqueue(inbound_id):
            report.not_enqueued.append(inbound_id)
    log.info(
        "replay",
        extra={
            "replayed": len(report.replayed),
            "skipped_routed": len(report.skipped_routed),
            "skipped_not_downloaded": len(report.skipped_not_downloaded),
            "missing": len(report.missing),
        },
    )
    return report


def replay_inbound(
    *,
    inbound_ids: list[int] | None = None,
    status: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    engine: Engine | None = None,
) -> list[int]:
    """Replay the selected inbound messages (see the module docstring); return the ids handed over.

    Routed messages in the selection are left alone and only logged; use :func:`replay_report`
    to learn which were skipped or missing.
    """
    return replay_report(
        inbound_ids=inbound_ids, status=status, outcome=outcome, since=since, until=until,
        engine=engine,
    ).replayed
