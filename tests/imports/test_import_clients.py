"""Importing clients.csv: keyed by name, domains checked like the API, all or nothing."""

from __future__ import annotations

from admin_api.services.import_templates import template_csv
from tests.imports.conftest import (
    add_client,
    add_profile,
    add_sla,
    client_by_name,
    errors_of,
    run_import,
    snapshot,
)

FULL = template_csv("clients")


def test_new_clients_are_created_with_their_domains_sla_and_profile(db):
    add_sla(db, "Gold 24x7")
    add_profile(db, "Servers")
    text = FULL + ('Acme Corp,A,"@ACME.com.; acme.de",DE1,+1 555,+1 556,Main St 1,Springfield,IL,'
                   '62701,USA,key account,yes,gold 24x7,Servers\r\n')
    report = run_import(db, "clients", text)
    assert report.as_dict() == {"applied": True, "created": 1, "updated": 0, "unchanged": 0,
                                "errors": []}
    client = client_by_name(db, "Acme Corp")
    assert client.domain_names == ["acme.com", "acme.de"]
    assert (client.zip_code, client.country, client.tickets_only_by_primary_contact) == (
        "62701", "USA", True)
    assert (client.sla_name, client.profile_name) == ("Gold 24x7", "Servers")


def test_importing_the_same_file_again_changes_nothing(db):
    add_sla(db, "Basic")
    text = FULL + "Acme,B,acme.com;acme.de,,,,,,,,,,TRUE,Basic,\r\nBeta,,beta.com,,,,,,,,,,,,\r\n"
    assert run_import(db, "clients", text).created == 2
    before = snapshot(db)
    report = run_import(db, "clients", text)
    assert report.as_dict() == {"applied": True, "created": 0, "updated": 0, "unchanged": 2,
                                "errors": []}
    assert snapshot(db) == before


def test_clients_are_matched_by_name_in_any_case_and_updated(db):
    client_id = add_client(db, "Acme", "acme.com", city="Old Town", phone="1")
    report = run_import(db, "clients", "name,city,domains\nACME,New Town,acme.com;acme.org\n")
    assert (report.created, report.updated) == (0, 1)
    client = client_by_name(db, "ACME")
    assert client.id == client_id
    assert client.city == "New Town" and client.phone == "1"  # no phone column: left alone
    assert client.domain_names == ["acme.com", "acme.org"]


def test_the_domains_cell_lists_all_domains_and_an_empty_cell_clears_a_field(db):
    add_client(db, "Acme", "acme.com", "acme.de", city="Paris")
    report = run_import(db, "clients", "name,city,domains\nAcme,,acme.de\n")
    assert report.updated == 1
    client = client_by_name(db, "Acme")
    assert client.city is None and client.domain_names == ["acme.de"]


def test_a_domain_of_another_client_is_a_row_error_naming_it(db):
    add_client(db, "Other Ltd", "shared.com")
    before = snapshot(db)
    report = run_import(db, "clients", "name,domains\nNew One,new.com\nAcme,\"acme.com;SHARED.com\"\n")
    assert errors_of(report) == [(3, "domains")]
    assert "shared.com belongs to client 'Other Ltd'" in report.errors[0].message
    assert report.applied is False and snapshot(db) == before


def test_a_domain_twice_in_the_file_is_a_row_error_naming_the_first_line(db):
    report = run_import(db, "clients", "name,domains\nAcme,acme.com\nBeta,beta.com\nGamma,ACME.com\n")
    assert errors_of(report) == [(4, "domains")]
    assert "already listed on line 2" in report.errors[0].message
    assert client_by_name(db, "Acme") is None


def test_invalid_domains_are_refused_with_the_reason(db):
    report = run_import(db, "clients", "name,domains\nA,bob@acme.com\nB,http://b.com\nC,cee\n")
    assert errors_of(report) == [(2, "domains"), (3, "domains"), (4, "domains")]
    assert "e-mail address" in report.errors[0].message
    assert "URL" in report.errors[1].message
    assert "no dot" in report.errors[2].message


def test_a_public_mail_provider_is_refused_unless_allowed(db):
    report = run_import(db, "clients", "name,domains\nSolo Consultant,gmail.com\n")
    assert errors_of(report) == [(2, "domains")]
    assert "public mail provider" in report.errors[0].message
    report = run_import(db, "clients", "name,domains\nSolo Consultant,gmail.com\n",
                        allow_public_domains=True)
    assert report.created == 1
    # Once the client has it, the same row imports without the permission: unchanged.
    report = run_import(db, "clients", "name,domains\nSolo Consultant,gmail.com\n")
    assert report.errors == [] and report.unchanged == 1


def test_unknown_sla_and_threshold_profile_names_are_row_errors(db):
    add_sla(db, "Gold")
    report = run_import(db, "clients", "name,sla,threshold_profile\nAcme,Platinum,\nBeta,Gold,Desktops\n")
    assert errors_of(report) == [(2, "sla"), (3, "threshold_profile")]
    assert "unknown SLA 'Platinum'" in report.errors[0].message
    assert "Gold" in report.errors[0].message  # names the known ones


def test_a_client_twice_in_the_file_is_a_row_error(db):
    report = run_import(db, "clients", "name\nAcme\nacme\n")
    assert errors_of(report) == [(3, "name")]
    assert "already on line 2" in report.errors[0].message


def test_every_bad_row_is_reported_and_nothing_is_applied(db):
    add_client(db, "Existing", "existing.com", city="Here")
    before = snapshot(db)
    rows = ["name,city,domains,tickets_only_by_primary_contact"]
    rows += [f"Client {i},City {i},client{i}.com,no" for i in range(2500)]
    rows[1200] = "Client X,Bad,existing.com,no"       # owned by Existing
    rows[2400] = "Client Y,Bad,y.com,maybe"           # not a boolean
    rows.append(",no name,z.com,")                      # name missing
    report = run_import(db, "clients", "\n".join(rows) + "\n")
    assert errors_of(report) == [(1201, "domains"), (2401, "tickets_only_by_primary_contact"),
                                 (2502, "name")]
    assert report.applied is False
    assert snapshot(db) == before


def test_a_dry_run_reports_what_would_happen_and_applies_nothing(db):
    add_client(db, "Acme", "acme.com")
    before = snapshot(db)
    report = run_import(db, "clients", "name,domains\nAcme,acme.com\nNew,new.com\n", dry_run=True)
    assert report.as_dict() == {"applied": False, "created": 1, "updated": 0, "unchanged": 1,
                                "errors": []}
    assert snapshot(db) == before


def test_a_value_too_long_for_its_column_is_a_row_error(db):
    report = run_import(db, "clients", f"name,zip_code\nAcme,{'9' * 21}\n")
    assert errors_of(report) == [(2, "zip_code")]
    assert "at most 20" in report.errors[0].message
