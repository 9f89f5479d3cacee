"""Attachments over HTTP: listed per ticket message, downloaded byte for byte from the raw message.

Both databases (the ``database_url`` fixture): the download reads ranges of the stored raw
message with ``substr`` on PostgreSQL (lz4-compressed there) and on SQLite.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from urllib.parse import unquote

import pytest

from sqlalchemy import select

from core.settings import Settings
from ingest.store import store_inbound
from models import TicketMessage
from models.db import make_engine
from routing.pipeline import route_inbound
from tests.admin_api.conftest import ADMIN_TOKEN, SECRET_KEY, Api, make_client, make_contact

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MAIL = Path(__file__).resolve().parent.parent / "mail"


@pytest.fixture
def world(database_url):
    from admin_api.app import create_app

    engine = make_engine(database_url)
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY)
    with TestClient(create_app(engine=engine, settings=settings)) as client:
        admin = Api(client, ADMIN_TOKEN)
        acme = make_client(admin)
        make_contact(admin, acme["id"], "bob@acme.com", is_primary=True)
        yield admin, engine, settings
    engine.dispose()


def route(world, raw: bytes) -> dict:
    """Store and route ``raw``; the ticket (GET /tickets/{id}) it landed on."""
    admin, engine, settings = world
    inbound_id = store_inbound(raw=raw, source="smtp", envelope_from="bob@acme.com", engine=engine)
    result = route_inbound(inbound_id, engine=engine, settings=settings)
    assert result.outcome == "ticket_created", result.reason
    return admin.ok("GET", f"/api/v1/tickets/{result.ticket_id}")


def sent_parts(raw: bytes) -> list[tuple[str, bytes]]:
    """(filename, bytes) of each attachment as the stdlib reads the sent mail."""
    message = BytesParser(policy=default).parsebytes(raw)
    return [(part.get_filename(), part.get_payload(decode=True)) for part in message.iter_attachments()]


def download(admin: Api, ticket: dict, index: int, message: int = 0):
    url = f"/api/v1/tickets/{ticket['id']}/messages/{ticket['messages'][message]['id']}/attachments/{index}"
    return admin.get(url)


def test_every_file_is_listed_and_downloads_byte_for_byte_with_safe_headers(world):
    admin = world[0]
    raw = (MAIL / "rfc2231_filenames.eml").read_bytes()
    ticket = route(world, raw)
    listed = ticket["messages"][0]["attachments"]
    sent = sent_parts(raw)
    assert [a["index"] for a in listed] == [0, 1, 2, 3]
    assert set(listed[0]) == {"index", "filename", "content_type", "size", "sha256", "inline", "content_id"}
    for item, (name, data) in zip(listed, sent, strict=True):
        response = download(admin, ticket, item["index"])
        assert response.status_code == 200
        assert response.content == data
        assert (item["size"], item["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert response.headers["content-type"].split(";")[0] == item["content_type"]
        assert response.headers["x-content-type-options"] == "nosniff"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=\"")
        if "filename*=" in disposition:
            assert unquote(disposition.split("filename*=UTF-8''")[1]) == name.replace("\\", "/").rsplit("/", 1)[-1]
    # non-ASCII names travel in filename* (RFC 6266); the ASCII fallback has no quote or path
    assert "filename*=UTF-8''%C3%9Cbersicht%20Q4%20%E2%80%93%20Preise.pdf" in \
        download(admin, ticket, 0).headers["content-disposition"]
    assert download(admin, ticket, 3).headers["content-disposition"] == 'attachment; filename="evil.bat"'


def test_winmail_dat_files_and_inline_images_download_too(world):
    from tests.mail.make_tnef import FILES

    admin = world[0]
    ticket = route(world, (MAIL / "outlook_winmail_dat.eml").read_bytes())
    message = ticket["messages"][0]
    assert "Protokoll der fehlgeschlagenen Sicherung" in message["body_text"]
    assert [(a["index"], a["filename"]) for a in message["attachments"]] == [(0, "Fehlerprotokoll.txt"), (1, "config.xml")]
    for index, (_name, data) in enumerate(FILES):
        assert download(admin, ticket, index).content == data

    raw = (MAIL / "outlook_inline_images.eml").read_bytes()
    ticket = route(world, raw.replace(b"AM0PR07MB-inline", b"AM0PR07MB-inline-2"))
    images = ticket["messages"][0]["attachments"]
    assert [(a["inline"], a["content_id"]) for a in images] == [
        (True, "image001.png@01DB4F2A.5E3C1D20"), (True, "image002.png@01DB4F2A.5E3C1D20")]
    pngs = [p.get_payload(decode=True) for p in BytesParser(policy=default).parsebytes(raw).walk()
            if p.get_content_type() == "image/png"]
    assert [download(admin, ticket, i).content for i in (0, 1)] == pngs
    assert pngs[0].startswith(b"\x89PNG")


def test_a_forwarded_message_downloads_as_eml(world):
    admin = world[0]
    raw = (MAIL / "forwarded_message_attached.eml").read_bytes()
    ticket = route(world, raw)
    response = download(admin, ticket, 0)
    assert response.headers["content-type"] == "message/rfc822"
    assert 'filename="Your password expires.eml"' in response.headers["content-disposition"]
    forwarded = raw.split(b"Content-Type: message/rfc822")[1].split(b"\n\n", 1)[1].rsplit(b"\n--", 1)[0]
    assert response.content == forwarded  # the forwarded message exactly as it sits in the mail
    assert BytesParser(policy=default).parsebytes(response.content)["Subject"] == "Your password expires"


def test_unknown_messages_and_indexes_are_404(world):
    admin = world[0]
    ticket = route(world, (MAIL / "rfc2231_filenames.eml").read_bytes())
    message_id = ticket["messages"][0]["id"]
    assert admin.get(f"/api/v1/tickets/{ticket['id']}/messages/{message_id}/attachments/4").status_code == 404
    assert admin.get(f"/api/v1/tickets/{ticket['id'] + 1}/messages/{message_id}/attachments/0").status_code == 404
    assert admin.get(f"/api/v1/tickets/{ticket['id']}/messages/{message_id + 99}/attachments/0").status_code == 404
    assert admin.get(f"/api/v1/tickets/{ticket['id']}/messages/{message_id}/attachments/-1").status_code == 422
    assert Api(admin.client, None).get(
        f"/api/v1/tickets/{ticket['id']}/messages/{message_id}/attachments/0").status_code == 401


def test_a_technician_may_download(world):
    admin = world[0]
    ticket = route(world, (MAIL / "rfc2231_filenames.eml").read_bytes())
    token = admin.ok("POST", "/api/v1/tokens", 201, json={"name": "tech", "role": "technician"})["token"]
    assert download(Api(admin.client, token), ticket, 2).content == bytes(range(10))


def test_a_10_mb_attachment_is_streamed_back_byte_for_byte(world):
    admin = world[0]
    data = os.urandom(10 * 1024 * 1024)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "bob@acme.com", "support@msp.example", "Crash dump"
    mail["Message-ID"] = "<dump-10mb@acme.com>"
    mail.set_content("The dump is attached.")
    mail.add_attachment(data, maintype="application", subtype="octet-stream", filename="memory.dmp")
    ticket = route(world, mail.as_bytes())
    item = ticket["messages"][0]["attachments"][0]
    assert (item["filename"], item["size"], item["sha256"]) == ("memory.dmp", len(data), hashlib.sha256(data).hexdigest())
    response = download(admin, ticket, 0)
    assert response.status_code == 200 and hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()


def test_the_portal_lists_only_its_own_tickets_attachments(world):
    admin = world[0]
    client = admin.ok("GET", "/api/v1/clients")["items"][0]
    worker = make_contact(admin, client["id"], "worker@acme.com")
    boss_ticket = route(world, (MAIL / "rfc2231_filenames.eml").read_bytes())
    raw = (MAIL / "outlook_inline_images.eml").read_bytes().replace(b'"Builder, Bob" <bob@acme.com>', b"worker@acme.com")
    worker_ticket = route(world, raw)
    assert worker_ticket["contact_id"] == worker["id"]
    own = admin.ok("GET", f"/api/v1/contacts/{worker['id']}/tickets")["items"]
    assert [t["id"] for t in own] == [worker_ticket["id"]]
    assert [(a["message_id"], a["index"], a["filename"]) for a in own[0]["attachments"]] == [
        (worker_ticket["messages"][0]["id"], 0, "image001.png"), (worker_ticket["messages"][0]["id"], 1, "image002.png")]
    primary = [c for c in admin.ok("GET", f"/api/v1/clients/{client['id']}/contacts")["items"] if c["is_primary"]][0]
    every = {t["id"]: t for t in admin.ok("GET", f"/api/v1/contacts/{primary['id']}/tickets")["items"]}
    assert set(every) == {boss_ticket["id"], worker_ticket["id"]}
    assert len(every[boss_ticket["id"]]["attachments"]) == 4


def test_reply_text_is_in_the_api_beside_the_whole_body(world):
    admin, engine, settings = world
    first = route(world, (MAIL / "rfc2231_filenames.eml").read_bytes())
    raw = (MAIL / "reply_thunderbird_en.eml").read_bytes().replace(b"<orig-tb@msp.example>", b"<rfc2231-1@acme.com>")
    inbound_id = store_inbound(raw=raw, source="smtp", envelope_from="bob@acme.com", engine=engine)
    assert route_inbound(inbound_id, engine=engine, settings=settings).outcome == "ticket_updated"
    first_message, reply = admin.ok("GET", f"/api/v1/tickets/{first['id']}")["messages"]
    assert first_message["reply_text"] == first_message["body_text"]  # not a reply: the whole text
    assert "We have reset the password." in reply["body_text"]
    assert "The password still does not work" in reply["reply_text"]
    assert "We have reset the password." not in reply["reply_text"] and "+49 30" not in reply["reply_text"]


def test_mail_is_stored_while_a_download_streams_on_sqlite(sqlite_url):
    """The download reads in a snapshot of its own: on SQLite a writer is not held up by it."""
    from sqlalchemy.orm import Session

    from admin_api.services.attachments import open_download
    from tests.routing.world import build_world

    engine = make_engine(sqlite_url)
    with Session(engine) as session, session.begin():
        build_world(session)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "bob@acme.com", "support@msp.example", "log"
    mail["Message-ID"] = "<log@acme.com>"
    mail.set_content("log attached")
    mail.add_attachment(os.urandom(3 * 1024 * 1024), maintype="application", subtype="octet-stream", filename="a.log")
    inbound_id = store_inbound(raw=mail.as_bytes(), source="smtp", envelope_from="bob@acme.com", engine=engine)
    result = route_inbound(inbound_id, engine=engine, settings=Settings(database_url=sqlite_url))
    with Session(engine) as session:
        message_id = session.scalars(select(TicketMessage.id).where(TicketMessage.inbound_id == inbound_id)).one()
        download = open_download(session, ticket_id=result.ticket_id, message_id=message_id, index=0)
    first = next(download.chunks)  # the read snapshot is open now
    engine.pool.dispose()  # the writer below gets a connection of its own
    writer = make_engine(sqlite_url)
    with writer.connect() as conn:  # a writer with no patience: "database is locked" at once if held up
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        conn.exec_driver_sql("UPDATE inbound_messages SET attempts = attempts WHERE id = ?", (inbound_id,))
        conn.commit()
    rest = b"".join(download.chunks)
    assert len(first) + len(rest) == 3 * 1024 * 1024
    writer.dispose()
    engine.dispose()
