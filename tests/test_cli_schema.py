"""Commands that read the product's tables say what to do on a database without the schema.

Before, ``ticketpost mailbox list``, ``replay`` and ``export`` ended in a driver traceback
("no such table") on a database that ``ticketpost migrate`` had not prepared.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port


def ticketpost(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TICKETPOST_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "ticketpost.cli", *args], env=env, check=False,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [("mailbox", "list"), ("mailbox", "remove", "1"), ("replay",),
                                     ("replay", "7"), ("export", "clients")])
def test_a_command_on_an_unmigrated_database_says_to_migrate(tmp_path, command):
    answer = ticketpost(*command, database_url=f"sqlite:///{tmp_path / 'new.db'}")
    assert answer.returncode == 2, answer.stderr
    assert f"ticketpost {command[0]}: the database has no ticketpost schema yet: run `ticketpost migrate` first" \
        in answer.stderr
    assert "Traceback" not in answer.stderr and answer.stdout == ""


def test_a_command_on_an_unreachable_postgresql_says_so():
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    answer = ticketpost("replay", database_url=url)
    assert answer.returncode == 2
    assert "ticketpost replay: the database is not reachable" in answer.stderr
    assert "Traceback" not in answer.stderr


def test_a_migrated_database_runs_the_command(sqlite_url):
    answer = ticketpost("mailbox", "list", database_url=sqlite_url)
    assert answer.returncode == 0, answer.stderr
