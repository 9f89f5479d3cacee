"""A pooled PostgreSQL connection whose backend went away is replaced at checkout, without a ping."""

from sqlalchemy import text
from sqlalchemy.pool import NullPool

from models.db import make_engine


def test_a_pooled_connection_whose_backend_was_terminated_is_replaced_at_checkout(pg_engine, pg_url):
    with pg_engine.connect() as conn:
        old_pid = conn.execute(text("select pg_backend_pid()")).scalar()
        conn.rollback()
    # what a PostgreSQL restart does to every backend: terminate it; the pooled connection idles on
    admin = make_engine(pg_url, poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text("select pg_terminate_backend(:pid, 10000)"), {"pid": old_pid})  # waits until it is gone
        conn.commit()
    admin.dispose()

    with pg_engine.connect() as conn:  # the next checkout must not hand out the dead connection
        new_pid = conn.execute(text("select pg_backend_pid()")).scalar()
    assert new_pid != old_pid
