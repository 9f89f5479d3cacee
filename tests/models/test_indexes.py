"""The indexes routing's per-message queries rely on are the ones the database uses."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from routing.sender_record import RECENT_NEW_TICKETS, recent_window


def _plan(engine, statement, values: dict) -> str:
    compiled = statement.compile(dialect=engine.dialect)
    params = compiled.construct_params(values)
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup)
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table must not hide the choice
        rows = conn.exec_driver_sql(explain + compiled.string, params).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_the_storm_guard_counts_a_senders_new_tickets_from_its_partial_index(engine):
    window = recent_window("anna@acme.example", datetime(2026, 11, 27, 12, tzinfo=timezone.utc), 7)
    plan = _plan(engine, select(RECENT_NEW_TICKETS), window)
    assert "ix_inbound_new_tickets_by_sender" in plan, plan
