"""Importing contacts.csv: keyed by e-mail, at most one primary per client, all or nothing."""

from __future__ import annotations

import pytest

from admin_api.services.import_templates import template_csv
from tests.imports.conftest import (
    add_client,
    add_contact,
    contact_by_email,
    errors_of,
    run_import,
    snapshot,
)

FULL = template_csv("contacts")


@pytest.fixture
def acme(db) -> int:
    return add_client(db, "Acme", "acme.com")


def test_new_contacts_are_created_with_lower_case_addresses(db, acme):
    text = FULL + "acme,Ann,Smith,Ann.Smith@ACME.com,+1 1,+1 2,CEO,TRUE,FALSE\r\n"
    report = run_import(db, "contacts", text)
    assert report.as_dict() == {"applied": True, "created": 1, "updated": 0, "unchanged": 0,
                                "errors": []}
    contact = contact_by_email(db, "ann.smith@acme.com")
    assert (contact.client_id, contact.first_name, contact.job_title, contact.is_primary) == (
        acme, "Ann", "CEO", True)


def test_importing_the_same_file_again_changes_nothing(db, acme):
    text = FULL + ("Acme,Ann,Smith,ann@acme.com,,,,TRUE,\r\n"
                   "Acme,Bob,Jones,bob@acme.com,,,IT,FALSE,TRUE\r\n")
    assert run_import(db, "contacts", text).created == 2
    before = snapshot(db)
    report = run_import(db, "contacts", text)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert snapshot(db) == before


def test_contacts_are_matched_by_email_in_any_case_and_updated(db, acme):
    contact_id = add_contact(db, acme, "ann@acme.com", first_name="Anne", phone="1")
    report = run_import(db, "contacts", "client,first_name,last_name,email\nAcme,Ann,Smith,ANN@acme.com\n")
    assert (report.created, report.updated) == (0, 1)
    contact = contact_by_email(db, "ann@acme.com")
    assert contact.id == contact_id and contact.first_name == "Ann"
    assert contact.phone == "1"  # no phone column: left alone


def test_an_unknown_client_is_a_row_error(db, acme):
    before = snapshot(db)
    report = run_import(db, "contacts", "client,first_name,last_name,email\n"
                                        "Acme,Ann,One,ann@acme.com\nAcme Inc,Bob,Two,bob@acme.com\n")
    assert errors_of(report) == [(3, "client")]
    assert "unknown client 'Acme Inc'" in report.errors[0].message
    assert report.applied is False and snapshot(db) == before


def test_a_bad_email_address_is_a_row_error(db, acme):
    report = run_import(db, "contacts", "client,first_name,last_name,email\n"
                                        "Acme,Ann,One,ann(at)acme.com\nAcme,Bob,Two,bob@\n")
    assert errors_of(report) == [(2, "email"), (3, "email")]
    assert "ann(at)acme.com" in report.errors[0].message


def test_an_address_twice_in_the_file_is_a_row_error(db, acme):
    report = run_import(db, "contacts", "client,first_name,last_name,email\n"
                                        "Acme,Ann,One,ann@acme.com\nAcme,Ann,Again,Ann@Acme.com\n")
    assert errors_of(report) == [(3, "email")]
    assert "already on line 2" in report.errors[0].message


def test_missing_names_are_row_errors(db, acme):
    report = run_import(db, "contacts", "client,first_name,last_name,email\nAcme,,One,ann@acme.com\n")
    assert errors_of(report) == [(2, "first_name")]


def test_two_primary_contacts_for_one_client_in_the_file_is_a_row_error(db, acme):
    before = snapshot(db)
    report = run_import(db, "contacts", "client,first_name,last_name,email,is_primary\n"
                                        "Acme,Ann,One,ann@acme.com,yes\n"
                                        "Acme,Bob,Two,bob@acme.com,no\n"
                                        "ACME,Cid,Three,cid@acme.com,TRUE\n")
    assert errors_of(report) == [(4, "is_primary")]
    assert "line 2" in report.errors[0].message
    assert snapshot(db) == before


def test_a_primary_in_the_file_replaces_the_existing_primary(db, acme):
    add_contact(db, acme, "old@acme.com", is_primary=True)
    report = run_import(db, "contacts", "client,first_name,last_name,email,is_primary\n"
                                        "Acme,New,Boss,new@acme.com,TRUE\n")
    assert report.errors == [] and report.created == 1
    assert contact_by_email(db, "new@acme.com").is_primary is True
    assert contact_by_email(db, "old@acme.com").is_primary is False
    assert run_import(db, "contacts", "client,first_name,last_name,email,is_primary\n"
                                      "Acme,New,Boss,new@acme.com,TRUE\n").unchanged == 1


def test_primaries_can_swap_within_one_file(db, acme):
    add_contact(db, acme, "ann@acme.com", is_primary=True, first_name="Ann", last_name="One")
    add_contact(db, acme, "bob@acme.com", first_name="Bob", last_name="Two")
    text = ("client,first_name,last_name,email,is_primary\n"
            "Acme,Bob,Two,bob@acme.com,TRUE\nAcme,Ann,One,ann@acme.com,FALSE\n")
    report = run_import(db, "contacts", text)
    assert (report.errors, report.updated) == ([], 2)
    assert contact_by_email(db, "bob@acme.com").is_primary is True
    assert contact_by_email(db, "ann@acme.com").is_primary is False


def test_a_demoted_primary_later_in_a_big_file_counts_the_same_in_a_dry_run(db, acme):
    add_contact(db, acme, "boss@acme.com", is_primary=True, first_name="Boss", last_name="X")
    rows = ["client,first_name,last_name,email,is_primary", "Acme,New,Boss,new@acme.com,TRUE"]
    rows += [f"Acme,P{i},Q,p{i}@acme.com,no" for i in range(1500)]
    rows.append("Acme,Boss,X,boss@acme.com,no")  # in a later batch than the new primary
    text = "\n".join(rows) + "\n"
    dry = run_import(db, "contacts", text, dry_run=True)
    real = run_import(db, "contacts", text)
    assert (dry.created, dry.updated, dry.unchanged) == (real.created, real.updated,
                                                         real.unchanged) == (1501, 1, 0)
    assert contact_by_email(db, "boss@acme.com").is_primary is False


def test_a_contact_moves_to_the_client_its_row_names(db, acme):
    beta = add_client(db, "Beta", "beta.com")
    add_contact(db, acme, "ann@acme.com", is_primary=True, first_name="Ann", last_name="One")
    report = run_import(db, "contacts", "client,first_name,last_name,email,is_primary\n"
                                        "Beta,Ann,One,ann@acme.com,TRUE\n")
    assert report.updated == 1
    contact = contact_by_email(db, "ann@acme.com")
    assert (contact.client_id, contact.is_primary) == (beta, True)


def test_a_dry_run_applies_nothing(db, acme):
    add_contact(db, acme, "ann@acme.com", first_name="Ann", last_name="One")
    before = snapshot(db)
    report = run_import(db, "contacts", "client,first_name,last_name,email\n"
                                        "Acme,Ann,Changed,ann@acme.com\nAcme,Bob,New,bob@acme.com\n",
                        dry_run=True)
    assert report.as_dict() == {"applied": False, "created": 1, "updated": 1, "unchanged": 0,
                                "errors": []}
    assert snapshot(db) == before


def test_a_primary_contact_moving_without_an_is_primary_column_is_no_longer_primary(db, acme):
    beta = add_client(db, "Beta", "beta.com")
    add_contact(db, acme, "ann@acme.com", is_primary=True, first_name="Ann", last_name="One")
    add_contact(db, beta, "boss@beta.com", is_primary=True, first_name="Boss", last_name="B")
    report = run_import(db, "contacts", "client,first_name,last_name,email\n"
                                        "Beta,Ann,One,ann@acme.com\nBeta,Boss,B,boss@beta.com\n")
    assert (report.errors, report.updated, report.unchanged) == ([], 1, 1)
    assert contact_by_email(db, "ann@acme.com").is_primary is False
    assert contact_by_email(db, "boss@beta.com").is_primary is True
