"""Benchmark: peak memory of the API process while it streams a 10 MB attachment (issue 19).

    python -m bench.attachments                 # PostgreSQL (private database), 10 MB
    python -m bench.attachments --sqlite        # the embedded SQLite database
    python -m bench.attachments --mb 50         # another size

A mail with one random attachment of ``--mb`` MiB (base64 in the raw message) is stored and routed
in this process; then ``ticketpost api`` runs as a child process, answers one small request (warm
up), its peak RSS is reset (``/proc/PID/clear_refs`` = 5, so VmHWM restarts at the current RSS),
and the attachment is downloaded over HTTP with a streaming client that checks the SHA-256 and
keeps no bytes. The result is the server's VmHWM after the download minus its RSS before it: the
peak RSS growth the download caused (target < 50 MB). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

TOKEN = "bench-attachments-token"


def _status(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` value in kB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(url: str, size: int) -> tuple[int, int, str]:
    """Store and route a mail with a ``size``-byte attachment; (ticket id, message id, sha256)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from core.settings import Settings
    from ingest.store import store_inbound
    from models import Client, ClientDomain, TicketMessage
    from models.db import make_engine, migrate
    from routing.pipeline import route_inbound

    migrate(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        client = Client(name="Acme")
        session.add(client)
        session.flush()
        session.add(ClientDomain(client_id=client.id, domain="acme.example"))
    data = os.urandom(size)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "bob@acme.example", "support@msp.example", "dump"
    mail["Message-ID"] = "<bench-attachment@acme.example>"
    mail.set_content("The memory dump is attached.")
    mail.add_attachment(data, maintype="application", subtype="octet-stream", filename="memory.dmp")
    inbound_id = store_inbound(raw=mail.as_bytes(), source="smtp", envelope_from="bob@acme.example", engine=engine)
    result = route_inbound(inbound_id, engine=engine, settings=Settings(database_url=url))
    with Session(engine) as session:
        message_id = session.scalar(select(TicketMessage.id).where(TicketMessage.inbound_id == inbound_id))
    engine.dispose()
    return result.ticket_id, message_id, hashlib.sha256(data).hexdigest()


def measure(url: str, size: int) -> dict:
    import httpx

    ticket_id, message_id, digest = _seed(url, size)
    port = _free_port()
    env = dict(os.environ, TICKETPOST_DATABASE_URL=url, TICKETPOST_ADMIN_TOKEN=TOKEN,
               TICKETPOST_SECRET_KEY="bench", TICKETPOST_API_PORT=str(port))
    server = subprocess.Popen([sys.executable, "-m", "ticketpost.cli", "api"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base_url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(200):
            try:
                httpx.get(f"{base_url}/api/v1/tickets/{ticket_id}", headers=headers, timeout=5).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        url_file = f"{base_url}/api/v1/tickets/{ticket_id}/messages/{message_id}/attachments/0"
        with httpx.stream("GET", url_file, headers=headers, timeout=60) as warm:  # first use: imports, pools
            for _ in warm.iter_raw():
                pass
        with open(f"/proc/{server.pid}/clear_refs", "w") as refs:
            refs.write("5")
        before = _status(server.pid, "VmRSS")
        sha, received, started = hashlib.sha256(), 0, time.perf_counter()
        with httpx.stream("GET", url_file, headers=headers, timeout=60) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                sha.update(chunk)
                received += len(chunk)
        seconds = time.perf_counter() - started
        peak = _status(server.pid, "VmHWM")
        assert sha.hexdigest() == digest, "the download differs from the sent file"
        return {"bytes": received, "seconds": round(seconds, 3), "rss_before_mb": round(before / 1024, 1),
                "peak_mb": round(peak / 1024, 1), "peak_growth_mb": round((peak - before) / 1024, 1),
                "loadavg": open("/proc/loadavg").read().split()[:3]}
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=10)
    parser.add_argument("--sqlite", action="store_true", help="the embedded SQLite database instead of PostgreSQL")
    args = parser.parse_args(argv)
    size = args.mb * 1024 * 1024
    if args.sqlite:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            result = measure(f"sqlite:///{folder}/bench.db", size)
    else:
        from bench.route import PG_ADMIN_URL, PrivateDatabase

        with PrivateDatabase(PG_ADMIN_URL) as url:
            result = measure(url, size)
    result["database"] = "sqlite" if args.sqlite else "postgresql"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
