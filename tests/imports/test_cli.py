"""``ticketpost template``, ``import`` and ``export`` on the command line."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from models.db import make_engine
from tests.imports.conftest import client_by_name, contact_by_email
from ticketpost.cli import main

CLIENTS = "name;domains\r\nAcme;acme.com\r\nBeta;beta.com\r\n"


def ticketpost(*args: str, database_url: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "TICKETPOST_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "ticketpost.cli", *args], env=env, check=False,
                          **kwargs)


def test_template_prints_the_header_line(capsys):
    assert main(["template", "contacts"]) == 0
    assert capsys.readouterr().out == ("client,first_name,last_name,email,phone,mobile_phone,"
                                       "job_title,is_primary,ignore_email\r\n")


def test_import_applies_a_file_and_reports_counts(use_database, tmp_path, capsys):
    path = tmp_path / "clients.csv"
    path.write_text(CLIENTS, encoding="utf-8")
    assert main(["import", "clients", str(path)]) == 0
    assert "2 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    assert main(["import", "clients", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 2


def test_a_dry_run_changes_nothing(use_database, tmp_path, capsys):
    path = tmp_path / "clients.csv"
    path.write_text(CLIENTS, encoding="utf-8")
    assert main(["import", "clients", str(path), "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out
    engine = make_engine(use_database)
    assert client_by_name(engine, "Acme") is None
    engine.dispose()


def test_bad_rows_exit_1_and_are_listed_by_line_and_column(use_database, tmp_path, capsys):
    path = tmp_path / "contacts.csv"
    path.write_text("client,first_name,last_name,email\nNobody,Ann,One,ann@x.com\nNobody,Bob,Two,bob@\n",
                    encoding="utf-8")
    assert main(["import", "contacts", str(path)]) == 1
    out = capsys.readouterr().out
    assert "nothing was applied" in out
    assert "line 2, column client: unknown client 'Nobody'" in out
    assert "line 3, column email:" in out


def test_a_missing_file_exits_2(use_database, tmp_path, capsys):
    assert main(["import", "clients", str(tmp_path / "nope.csv")]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_export_writes_what_import_reads_back(use_database, tmp_path, capsys):
    clients = tmp_path / "clients.csv"
    clients.write_text(CLIENTS, encoding="utf-8")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("client,first_name,last_name,email,is_primary\nacme,Ann,=One,ann@acme.com,1\n")
    assert main(["import", "clients", str(clients)]) == 0
    assert main(["import", "contacts", str(contacts)]) == 0
    exported = tmp_path / "export.csv"
    assert main(["export", "contacts", "-o", str(exported)]) == 0
    assert exported.read_bytes().decode("utf-8") == (
        "client,first_name,last_name,email,phone,mobile_phone,job_title,is_primary,ignore_email\r\n"
        "Acme,Ann,'=One,ann@acme.com,,,,TRUE,FALSE\r\n")
    capsys.readouterr()
    assert main(["import", "contacts", str(exported)]) == 0
    assert "0 created, 0 updated, 1 unchanged" in capsys.readouterr().out
    engine = make_engine(use_database)
    assert contact_by_email(engine, "ann@acme.com").last_name == "=One"
    engine.dispose()


def test_the_progress_bar_appears_only_on_a_terminal(sqlite_url, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text(CLIENTS, encoding="utf-8")
    piped = ticketpost("import", "clients", str(path), "--dry-run", database_url=sqlite_url,
                       capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert "importing clients" not in piped.stderr

    leader, follower = pty.openpty()
    try:
        on_tty = ticketpost("import", "clients", str(path), "--dry-run", database_url=sqlite_url,
                            stdout=follower, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert on_tty.returncode == 0, on_tty.stderr
    assert "importing clients" in on_tty.stderr
