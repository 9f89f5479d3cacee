"""Files as Excel, LibreOffice and Google Sheets save them are imported alike."""

from __future__ import annotations

import codecs

import idna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.imports.conftest import client_by_name, contact_by_email, errors_of, run_import, snapshot

HEADER = "name;rank;domains;business_id;phone;city;notes;tickets_only_by_primary_contact"


def test_an_excel_csv_in_windows_1252_with_semicolons_is_imported(db):
    text = (f"{HEADER}\r\n"
            "Müller Gärtnerei GmbH;A;müller-gärtnerei.de;DE123;+49 30 1234;Köln;\"Straße 5; Hof\";WAHR\r\n")
    text = text.replace("WAHR", "TRUE")
    report = run_import(db, "clients", text.encode("cp1252"))
    assert report.errors == [] and report.created == 1
    client = client_by_name(db, "Müller Gärtnerei GmbH")
    assert client.city == "Köln"
    assert client.notes == "Straße 5; Hof"
    assert client.tickets_only_by_primary_contact is True
    assert client.domain_names == [idna.encode("müller-gärtnerei.de").decode("ascii")]


def test_an_excel_csv_utf8_with_byte_order_mark_is_imported(db):
    text = f"{HEADER}\r\nBüro Schmidt;B;buero-schmidt.de;;;;;FALSE\r\n;;;;;;;\r\n;;;;;;;\r\n"
    report = run_import(db, "clients", codecs.BOM_UTF8 + text.encode("utf-8"))
    assert report.errors == [] and report.created == 1
    assert client_by_name(db, "Büro Schmidt").rank == "B"


def test_excel_unicode_text_utf16_with_tabs_is_imported(db):
    text = "Name\tDomains\tNotes\r\nΑθήνα Α.Ε.\tathina.gr\tκαλημέρα\r\n"
    report = run_import(db, "clients", text.encode("utf-16"))
    assert report.errors == [] and report.created == 1
    assert client_by_name(db, "Αθήνα Α.Ε.").notes == "καλημέρα"


def test_a_libreoffice_csv_with_quoted_line_breaks_reports_the_starting_lines(db):
    text = ('name,address,domains,notes\n'
            'Acme,"Main Street 1\nBuilding B\n3rd floor","acme.com, acme.de",plain\n'
            'Beta,,"beta.com",\n'
            'Gamma,,gamma.com,"said ""hi"", left"\n'
            'Delta,,not a domain,\n')
    report = run_import(db, "clients", text)
    # Delta starts on line 7: the header is line 1, Acme spans lines 2-4.
    assert errors_of(report) == [(7, "domains")]
    assert report.applied is False
    fixed = text.replace("not a domain", "delta.com")
    report = run_import(db, "clients", fixed)
    assert report.errors == [] and report.created == 4
    assert client_by_name(db, "Acme").address == "Main Street 1\nBuilding B\n3rd floor"
    assert client_by_name(db, "Acme").domain_names == ["acme.com", "acme.de"]
    assert client_by_name(db, "Gamma").notes == 'said "hi", left'


def test_a_google_sheets_csv_with_booleans_in_any_spelling_is_imported(db):
    run_import(db, "clients", "name,domains\nAcme,acme.com\n")
    text = ("client,first_name,last_name,email,is_primary,ignore_email\r\n"
            "acme,Ann,One,ann@acme.com,TRUE,no\r\n"
            "ACME,Bob,Two,bob@acme.com,false,yes\r\n"
            "Acme,Cid,Three,cid@acme.com,,1\r\n"
            "Acme,Dan,Four,dan@acme.com,0,\r\n")
    report = run_import(db, "contacts", text)
    assert report.errors == [] and report.created == 4
    flags = {e: (contact_by_email(db, e).is_primary, contact_by_email(db, e).ignore_email)
             for e in ("ann@acme.com", "bob@acme.com", "cid@acme.com", "dan@acme.com")}
    assert flags == {"ann@acme.com": (True, False), "bob@acme.com": (False, True),
                     "cid@acme.com": (False, True), "dan@acme.com": (False, False)}


def test_header_names_are_matched_in_any_order_and_case(db):
    text = "  EMAIL ,Last_Name,First Name,Client\nann@acme.com,One,Ann,Acme\n"
    run_import(db, "clients", "name\nAcme\n")
    report = run_import(db, "contacts", text)
    assert report.errors == [] and report.created == 1
    assert contact_by_email(db, "ann@acme.com").first_name == "Ann"


def test_an_unknown_column_and_a_missing_required_column_are_named(db):
    before = snapshot(db)
    report = run_import(db, "contacts", "client,first_name,surname,email\nAcme,Ann,One,a@acme.com\n")
    assert errors_of(report) == [(1, "surname"), (1, "last_name")]
    assert "unknown column 'surname'" in report.errors[0].message
    assert "required column 'last_name' is missing" in report.errors[1].message
    assert report.applied is False and snapshot(db) == before


def test_an_empty_file_is_an_error_not_a_crash(db):
    report = run_import(db, "clients", b"")
    assert errors_of(report) == [(1, None)]
    assert "empty" in report.errors[0].message


def test_a_row_with_more_cells_than_the_header_is_reported(db):
    report = run_import(db, "clients", "name;domains\nAcme;acme.com;acme.de\n")
    assert errors_of(report) == [(2, None)]
    assert "quotes" in report.errors[0].message


def test_a_quote_that_never_closes_is_reported_on_its_line(db):
    report = run_import(db, "clients", 'name,notes\nAcme,fine\nBeta,"never closed\nGamma,x\n')
    assert errors_of(report) == [(3, None)]
    assert report.applied is False and client_by_name(db, "Acme") is None


def test_windows_1252_bytes_that_are_not_utf8_are_not_mistaken_for_it(db):
    # 0x80 is the euro sign in Windows-1252 and invalid as UTF-8.
    report = run_import(db, "clients", "name;notes\nAcme;Budget 5000 \u20ac\n".encode("cp1252"))
    assert report.errors == []
    assert client_by_name(db, "Acme").notes == "Budget 5000 \u20ac"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["clients", "contacts"]),
       body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode())),
       header=st.booleans())
def test_any_bytes_give_a_report_never_a_crash(sqlite_engine, kind, body, header):
    prefix = b"name,domains,notes\n" if kind == "clients" else b"client,first_name,last_name,email\n"
    report = run_import(sqlite_engine, kind, (prefix if header else b"") + body, dry_run=True)
    assert report.applied is False
    assert all(e.row >= 1 and e.message for e in report.errors)
