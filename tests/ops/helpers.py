"""Helpers of the operations tests: read a Prometheus scrape, find metric names in PromQL,
run ticketpost roles as real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# --- scrapes -------------------------------------------------------------------------------------


@dataclass
class Scrape:
    """One parsed ``/metrics`` answer: samples by name and labels, and the declared families."""

    text: str

    def __post_init__(self) -> None:
        self.samples: list[tuple[str, dict, float]] = []
        for family in text_string_to_metric_families(self.text):
            for s in family.samples:
                self.samples.append((s.name, dict(s.labels), s.value))
        self.types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", self.text, re.MULTILINE))

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample named ``name`` with exactly ``labels``, or None."""
        for sample_name, sample_labels, value in self.samples:
            if sample_name == name and sample_labels == labels:
                return value
        return None

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample named ``name`` whose labels include ``labels``."""
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )

    def exposed_names(self) -> set[str]:
        """Every series name a query may use: families with their sample suffixes."""
        names = set()
        for family, kind in self.types.items():
            names.add(family)
            if kind == "histogram":
                names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
            if kind == "counter" and not family.endswith("_total"):
                names.add(f"{family}_total")
        return names


# --- PromQL --------------------------------------------------------------------------------------

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "le",
    "atan2",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


# --- processes -----------------------------------------------------------------------------------


class Role:
    """One ``ticketpost <role>`` process started by a test; stopped by its PID."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.err_path = log_path.with_suffix(".stderr")
        self.err = open(self.err_path, "wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ticketpost.cli", *args],
            env=full_env,
            stdout=self.log,
            stderr=self.err,
            cwd=log_path.parent,
        )

    def output(self) -> str:
        """What the process printed: stdout, then stderr (its log lines)."""
        self.log.flush()
        self.err.flush()
        return self.log_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        """The process's stderr, line by line (where its logging goes)."""
        self.err.flush()
        return self.err_path.read_text(errors="replace").splitlines()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        self.err.close()
        return self.proc.returncode


def wait_until(predicate, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"gave up waiting for {what} (last value: {last!r})")


def wait_for_port(port: int, role: Role | None = None, timeout: float = 30.0) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (or the role's process died)."""
    import socket

    def listening():
        if role is not None and role.proc.poll() is not None:
            raise AssertionError(f"{role.args} exited early:\n{role.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(listening, timeout=timeout, what=f"port {port}")


# --- mail ----------------------------------------------------------------------------------------


def seed_client(database_url: str, *, name: str = "Acme", domain: str = "acme.example") -> None:
    """A client owning ``domain``, so mail from it opens tickets."""
    from models import Client, ClientDomain
    from models.db import make_engine, session_scope

    engine = make_engine(database_url)
    with session_scope(engine) as session:
        session.add(Client(name=name, domains=[ClientDomain(domain=domain)]))
    engine.dispose()


def message(sender: str, subject: str) -> bytes:
    """A plain support request from ``sender``."""
    import email.utils

    return (
        f"From: {sender}\r\nTo: help@msp.example\r\nSubject: {subject}\r\n"
        f"Message-ID: {email.utils.make_msgid(domain='test.example')}\r\n"
        f"Date: {email.utils.formatdate()}\r\n\r\nPlease help with {subject}.\r\n"
    ).encode()


def send_mail(port: int, sender: str, subject: str) -> None:
    """Deliver one message over real SMTP to 127.0.0.1:``port``; raises unless it gets 250."""
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, ["help@msp.example"], message(sender, subject))


def run_cli(*args: str, env: dict[str, str], cwd=None) -> "subprocess.CompletedProcess[str]":
    """Run ``ticketpost ARGS`` as a real process with only ``env`` as TICKETPOST_* settings."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ticketpost.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def store(engine, sender: str, subject: str, *, source: str = "smtp", age=None, **fields) -> int:
    """Store one message like an ingester would; optionally make it older or set row fields."""
    from datetime import datetime, timezone

    from sqlalchemy import update

    from ingest.store import store_inbound
    from models import InboundMessage

    inbound_id = store_inbound(raw=message(sender, subject), source=source, engine=engine)
    if age is not None:
        fields["received_at"] = datetime.now(timezone.utc) - age
    if fields:
        with engine.begin() as conn:
            conn.execute(
                update(InboundMessage).where(InboundMessage.id == inbound_id).values(**fields)
            )
    return inbound_id


def run_here(*args: str) -> int:
    """Run ``ticketpost ARGS`` in this process (same parser and command code, no logging set-up);
    settings come from the environment as usual. Returns the exit code."""
    from ticketpost.cli import build_parser

    parsed = build_parser().parse_args(list(args))
    return int(parsed.func(parsed) or 0)
