"""Domains are stored in one canonical form, and non-hostnames are refused saying why."""

from __future__ import annotations

import pytest

from models.domain_names import InvalidDomain, is_public_domain, normalize_domain, suffixes


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("@acme.com", "acme.com"),
        ("ACME.com.", "acme.com"),
        ("  Acme.COM ", "acme.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("mail.EU.acme.com", "mail.eu.acme.com"),
    ],
)
def test_a_domain_is_stored_lower_case_idna_without_at_or_trailing_dot(given, stored):
    assert normalize_domain(given) == stored


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("bob@acme.com", "e-mail address"),
        ("http://acme.com", "URL"),
        ("acme", "no dot"),
        ("a" * 64 + ".com", "longer than 63"),
        ("exa mple.com", "not allowed"),
        ("-acme.com", "not a valid"),
        ("1.2.3.4", "IP address"),
        ("", "empty"),
    ],
)
def test_a_non_hostname_is_refused_with_a_message_saying_what_is_wrong(given, says):
    with pytest.raises(InvalidDomain, match=says):
        normalize_domain(given)


@pytest.mark.parametrize("domain", ["gmail.com", "gmx.de", "gmx.net", "yandex.ru", "proton.me"])
def test_public_mail_providers_are_recognised(domain):
    assert is_public_domain(domain)


@pytest.mark.parametrize("domain", ["acme.com", "gmxtra.com", "mail.acme.gmx.example.com"])
def test_company_domains_are_not_public(domain):
    assert not is_public_domain(domain)


def test_a_sender_domain_is_matched_against_its_suffixes_longest_first():
    assert suffixes("mail.eu.acme.com") == ["mail.eu.acme.com", "eu.acme.com", "acme.com"]
