"""``graph://MAILBOX_ID``: acknowledgements sent as a Graph mailbox (a local Graph on loopback)."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy

from models import OutboxItem, utcnow
from models.db import session_scope
from routing.outbox.dispatcher import dispatch
from tests.graph_server import graph_server  # noqa: F401  (fixture)
from tests.ingest.imap_support import SECRET_KEY
from tests.ingest.test_graph import add_graph_mailbox
from tests.outbox.test_dispatcher import _row, _ticket_and_ack


def test_an_acknowledgement_goes_out_through_graph_sendmail_as_mime(engine, graph_server, outbound_settings):
    mailbox_id = add_graph_mailbox(engine, graph_server)
    settings = outbound_settings.model_copy(update={"outbound_url": f"graph://{mailbox_id}", "secret_key": SECRET_KEY})
    row_id = _ticket_and_ack(engine)
    assert dispatch(engine=engine, settings=settings) == {"sent": 1, "retrying": 0, "failed": 0}
    ((user, raw),) = graph_server.sent_mail
    msg = email.message_from_bytes(raw, policy=policy.default)
    row = _row(engine, row_id)
    assert user == "support@msp.example" and row.status == "sent" and row.last_status_code == 202
    assert msg["Message-ID"] == f"<{row.message_id}>" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["To"] == "alice@acme.example"


def test_graph_throttling_waits_as_told_and_refusals_fail(engine, graph_server, outbound_settings):
    mailbox_id = add_graph_mailbox(engine, graph_server)
    settings = outbound_settings.model_copy(update={"outbound_url": "graph://support", "secret_key": SECRET_KEY})
    row_id = _ticket_and_ack(engine)
    graph_server.throttle(1, 600)
    assert dispatch(engine=engine, settings=settings)["retrying"] == 1
    row = _row(engine, row_id)
    assert "429" in row.reason and row.next_attempt_at - utcnow() > timedelta(seconds=590)  # Retry-After, not 0 s
    with session_scope(engine) as s:
        s.get(OutboxItem, row_id).next_attempt_at = utcnow()
    assert dispatch(engine=engine, settings=settings)["sent"] == 1  # by name, too
    missing = settings.model_copy(update={"outbound_url": f"graph://{mailbox_id + 100}"})
    other = _ticket_and_ack(engine)
    dispatch(engine=engine, settings=missing)
    assert "there is no mailbox" in _row(engine, other).reason
