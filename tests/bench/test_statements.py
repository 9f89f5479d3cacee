"""The benchmarks' statement counter sees transaction control: BEGIN, COMMIT, ROLLBACK, SAVEPOINT."""

from __future__ import annotations

import psycopg
from sqlalchemy import text

from bench.statements import counting


def _warm(engine):
    """Connect once, so the dialect's first-connect queries are not counted."""
    with engine.connect():
        pass


def test_a_transaction_of_one_query_is_three_statements_with_one_durable_commit(engine):
    _warm(engine)
    with counting(engine) as count, engine.connect() as conn:
        conn.begin()
        conn.execute(text("SELECT 1"))
        conn.commit()
    assert (count.statements, count.transaction_control, count.queries) == (3, 2, 1)
    assert count.durable_commits == 1


def test_savepoints_and_rollbacks_are_transaction_control_and_commit_nothing(engine):
    _warm(engine)
    with counting(engine) as count, engine.connect() as conn:
        conn.begin()
        savepoint = conn.begin_nested()
        conn.execute(text("SELECT 1"))
        savepoint.rollback()
        conn.rollback()
    # BEGIN, SAVEPOINT, SELECT, ROLLBACK TO SAVEPOINT, ROLLBACK
    assert (count.statements, count.transaction_control, count.durable_commits) == (5, 4, 0)


def test_each_write_in_autocommit_mode_is_a_durable_commit_of_its_own(pg_url):
    # The shape of django-helpdesk's e-mail path: Django runs psycopg in autocommit mode.
    with counting() as count, psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("UPDATE t SET x = 2")
        conn.execute("SELECT x FROM t")
    assert (count.statements, count.transaction_control, count.durable_commits) == (4, 0, 2)
