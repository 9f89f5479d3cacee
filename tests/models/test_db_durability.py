"""Embedded SQLite is durable: every COMMIT reaches the disk before anything is acknowledged."""

from __future__ import annotations

from models.db import make_engine

SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def test_a_fresh_sqlite_connection_runs_wal_with_synchronous_full(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert SYNCHRONOUS[conn.exec_driver_sql("PRAGMA synchronous").scalar()] == "FULL"
        engine.dispose()  # and so does every new pooled connection
        with engine.connect() as conn:
            assert SYNCHRONOUS[conn.exec_driver_sql("PRAGMA synchronous").scalar()] == "FULL"
    finally:
        engine.dispose()
