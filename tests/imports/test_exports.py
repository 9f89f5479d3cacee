"""Exports in template form: safe in a spreadsheet, and they import back to "unchanged"."""

from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from admin_api.services.exports import export_csv
from admin_api.services.import_templates import escape_cell, template_csv, unescape_cell
from models import Client, ClientDomain, Contact, Sla, ThresholdProfile
from models.db import session_scope
from tests.imports.conftest import add_client, add_contact, add_sla, contact_by_email, run_import, snapshot

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def export(engine, kind: str) -> str:
    return "".join(export_csv(engine=engine, kind=kind))


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_templates_have_exactly_the_spec_columns():
    assert template_csv("clients") == (
        "name,rank,domains,business_id,phone,fax,address,city,state,zip_code,country,notes,"
        "tickets_only_by_primary_contact,sla,threshold_profile\r\n")
    assert template_csv("contacts") == (
        "client,first_name,last_name,email,phone,mobile_phone,job_title,is_primary,ignore_email\r\n")


def test_an_export_starts_no_cell_with_a_formula_character(db):
    add_sla(db, "=Gold")
    client_id = add_client(db, '=HYPERLINK("http://evil.example","click")', "acme.com",
                           phone="+49 30 123", notes="-2+3", city="@SUM(A1)", rank="\tx",
                           address="\r=1")
    add_contact(db, client_id, "-bob@acme.com", first_name="=cmd|' /C calc'!A0",
                last_name="@x", job_title="+", mobile_phone="'=already quoted")
    for kind in ("clients", "contacts"):
        rows = cells(export(db, kind))
        assert len(rows) == 2
        assert not [c for row in rows for c in row if c.startswith(DANGEROUS)]
    client_row = dict(zip(cells(export(db, "clients"))[0], cells(export(db, "clients"))[1]))
    assert client_row["name"] == "'" + '=HYPERLINK("http://evil.example","click")'
    assert client_row["phone"] == "'+49 30 123"


def test_escaping_round_trips_every_string():
    for value in ["=1", "'=1", "''=1", "'", "plain", "'plain", "-", "", "\t=", "' =x"]:
        assert unescape_cell(escape_cell(value)) == value
        assert not escape_cell(value).startswith(DANGEROUS)


def test_an_export_imports_back_unchanged(db):
    add_sla(db, "Gold")
    client_id = add_client(db, "Acme", "acme.com", "acme.de", notes="line 1\nline 2; \"quoted\"",
                           phone="+1 555", tickets_only_by_primary_contact=True)
    add_client(db, "Beta", zip_code="-")
    add_contact(db, client_id, "ann@acme.com", is_primary=True, phone="=1", ignore_email=True)
    before = snapshot(db)
    clients_report = run_import(db, "clients", export(db, "clients"))
    contacts_report = run_import(db, "contacts", export(db, "contacts"))
    assert (clients_report.errors, clients_report.unchanged) == ([], 2)
    assert (contacts_report.errors, contacts_report.unchanged) == ([], 1)
    assert snapshot(db) == before


# --- property: export → import is the identity ---------------------------------------------------

# Latin scripts, where Python's lower() and the databases' agree (İ folds differently: left out).
printable = st.characters(min_codepoint=0x20, max_codepoint=0x24F, blacklist_categories=("Cs", "Cc"),
                          blacklist_characters="\u0130")
tricky = st.sampled_from(["=", "+", "-", "@", "'", "\t", "\n", "\r", ";", ",", '"', " ", "é", "ß"])
cell_text = st.text(st.one_of(printable, tricky), max_size=12).map(str.strip)
optional_text = st.one_of(st.none(), cell_text.filter(bool))
local_part = st.text(st.sampled_from("abcxyz019.-+=_'"), min_size=1, max_size=8).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)

client_strategy = st.fixed_dictionaries({
    "name": cell_text.filter(bool).map(lambda s: s[:200]),
    "rank": optional_text, "phone": optional_text, "city": optional_text, "notes": optional_text,
    "address": optional_text, "country": optional_text,
    "tickets_only_by_primary_contact": st.booleans(),
    "domains": st.integers(min_value=0, max_value=3),
    "sla": st.sampled_from([None, "=Gold", "Basic"]),
    "contacts": st.lists(st.fixed_dictionaries({
        "local": local_part, "first_name": cell_text.filter(bool), "last_name": cell_text.filter(bool),
        "job_title": optional_text, "phone": optional_text, "ignore_email": st.booleans(),
    }), max_size=3, unique_by=lambda c: c["local"].lower()),
    "primary": st.integers(min_value=-1, max_value=2),
})


def _wipe(engine, *, references: bool) -> None:
    with session_scope(engine) as session:
        for model in (Contact, ClientDomain, Client) + ((Sla, ThresholdProfile) if references else ()):
            session.execute(delete(model))


def _seed(engine, generated: list[dict]) -> None:
    with session_scope(engine) as session:
        slas = {name: Sla(name=name, first_response_minutes=30) for name in ("=Gold", "Basic")}
        session.add_all(slas.values())
        for i, spec in enumerate(generated):
            client = Client(
                name=spec["name"], sla=slas.get(spec["sla"]),
                tickets_only_by_primary_contact=spec["tickets_only_by_primary_contact"],
                **{k: spec[k] for k in ("rank", "phone", "city", "notes", "address", "country")})
            client.domains = [ClientDomain(domain=f"c{i}-{j}.example.com") for j in range(spec["domains"])]
            session.add(client)
            session.flush()
            for k, c in enumerate(spec["contacts"]):
                session.add(Contact(
                    client_id=client.id, email=f"{c['local']}@c{i}.example.org".lower(),
                    first_name=c["first_name"][:100], last_name=c["last_name"][:100],
                    job_title=c["job_title"], phone=c["phone"], ignore_email=c["ignore_email"],
                    is_primary=k == spec["primary"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=st.lists(client_strategy, max_size=5, unique_by=lambda c: c["name"].lower()))
def test_export_then_import_changes_nothing_and_rebuilds_the_same_data(db, generated):
    engine = db
    _wipe(engine, references=True)
    _seed(engine, generated)
    before = snapshot(engine)
    clients_csv, contacts_csv = export(engine, "clients"), export(engine, "contacts")

    again = run_import(engine, "clients", clients_csv), run_import(engine, "contacts", contacts_csv)
    assert [r.errors for r in again] == [[], []]
    assert [(r.created, r.updated) for r in again] == [(0, 0), (0, 0)]
    assert snapshot(engine) == before

    _wipe(engine, references=False)
    rebuilt = run_import(engine, "clients", clients_csv), run_import(engine, "contacts", contacts_csv)
    assert [r.errors for r in rebuilt] == [[], []]
    assert (export(engine, "clients"), export(engine, "contacts")) == (clients_csv, contacts_csv)


# --- contacts routing created ---------------------------------------------------------------------

ROUTED_SENDERS = [
    "info@acme.com",                      # one name from the local part (was first "Info", last "")
    "Support <support@acme.com>",         # one name from the display name
    "John Smith <john.smith@acme.com>",
    '"Müller, Jürgen" <jm@acme.com>',
    "=cmd <x-1@acme.com>",                # a formula character, escaped on export
    '"," <comma@acme.com>',               # a display name of nothing but a comma
]


def test_contacts_routing_created_export_and_import_back_unchanged(db):
    from core.settings import Settings
    from ingest.store import store_inbound
    from routing.pipeline import route_inbound

    add_client(db, "Acme", "acme.com")
    for n, sender in enumerate(ROUTED_SENDERS):
        raw = (f"From: {sender}\r\nTo: help@msp.example\r\nSubject: hello {n}\r\n"
               f"Message-ID: <routed-{n}@acme.com>\r\n\r\nbody\r\n").encode()
        result = route_inbound(store_inbound(raw=raw, source="smtp", engine=db), engine=db, settings=Settings())
        assert result.outcome == "ticket_created", result.reason
    info = contact_by_email(db, "info@acme.com")
    assert (info.first_name, info.last_name, info.auto_created) == ("Info", "(unknown)", True)
    before = snapshot(db)
    report = run_import(db, "contacts", export(db, "contacts"))
    assert (report.errors, report.unchanged) == ([], len(ROUTED_SENDERS))
    assert snapshot(db) == before
