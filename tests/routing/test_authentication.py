"""Unit tests of routing.authentication: which Authentication-Results header decides, alignment,
and local DKIM verification with real signatures and an in-memory DNS."""

from __future__ import annotations

import email
import socket
from email import policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.auth_dkim import static_dns, verify_signatures
from routing.auth_orgdomain import aligned, organizational_domain
from routing.authentication import AuthVerdict, authserv_id_of, evaluate_authentication
from tests.routing.sender_auth_keys import DkimKey, dns_for

TRUSTED = ["mx.msp.example"]


def mail(*auth_results: str, sender: str = "Alice <alice@acme.com>", body: str = "Help!") -> bytes:
    """A raw message with the given Authentication-Results headers, topmost first."""
    lines = [f"Authentication-Results: {value}" for value in auth_results]
    lines += [
        f"From: {sender}",
        "To: support@msp.example",
        "Subject: printer on fire",
        "Date: Fri, 27 Nov 2026 10:00:00 +0000",
        "Message-ID: <m1@acme.com>",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode()


def judge(raw: bytes, *, from_domain="acme.com", trusted=TRUSTED, **kw) -> AuthVerdict:
    message = email.message_from_bytes(raw, policy=policy.compat32)
    return evaluate_authentication(
        message=message, raw=raw, from_domain=from_domain, trusted_authserv_ids=trusted, **kw
    )


# --- organizational domains ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain, org",
    [
        ("acme.com", "acme.com"),
        ("mail.eu.acme.com", "acme.com"),
        ("x.acme.co.uk", "acme.co.uk"),
        ("alice.github.io", "alice.github.io"),
        ("MAIL.Acme.COM.", "acme.com"),
        ("co.uk", "co.uk"),
    ],
)
def test_organizational_domain_comes_from_the_public_suffix_list(domain, org):
    assert organizational_domain(domain) == org


def test_alignment_is_relaxed_but_stops_at_the_organization():
    assert aligned("mail.acme.com", "acme.com")
    assert aligned("acme.com", "eu.acme.com")
    assert not aligned("acme.com.evil.example", "acme.com")
    assert not aligned("other.co.uk", "acme.co.uk")
    assert not aligned("bob.github.io", "alice.github.io")
    assert not aligned("", "acme.com")


def test_internationalized_domains_align_in_either_form():
    assert aligned("mail.bücher.example", "xn--bcher-kva.example")


def test_the_public_suffix_list_is_read_without_any_network(monkeypatch):
    import routing.auth_orgdomain as module

    module._psl.cache_clear()

    def no_network(*args, **kwargs):
        raise AssertionError("the public suffix list must not be fetched")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    try:
        assert organizational_domain("a.b.acme.co.uk") == "acme.co.uk"
    finally:
        module._psl.cache_clear()


# --- which header decides -------------------------------------------------------------------------


def test_dmarc_pass_from_the_trusted_server_authenticates():
    verdict = judge(mail("mx.msp.example; dmarc=pass (p=reject) header.from=acme.com"))
    assert verdict.authenticated and verdict.method == "dmarc"
    assert "mx.msp.example" in verdict.detail and "dmarc=pass" in verdict.detail


def test_aligned_dkim_pass_authenticates_even_when_dmarc_is_absent():
    verdict = judge(mail("mx.msp.example; dkim=pass header.d=mail.acme.com header.s=s1"))
    assert verdict.authenticated and verdict.method == "dkim"
    assert "d=mail.acme.com" in verdict.detail


def test_dkim_signing_domain_falls_back_to_the_identity():
    verdict = judge(mail("mx.msp.example; dkim=pass header.i=@acme.com"))
    assert verdict.authenticated and verdict.method == "dkim"


def test_dkim_pass_by_an_unaligned_domain_does_not_authenticate():
    verdict = judge(
        mail("mx.msp.example; dkim=pass header.d=evil.example; dmarc=fail header.from=acme.com")
    )
    assert not verdict.authenticated and verdict.method is None
    assert verdict.detail == (
        "Authentication-Results from mx.msp.example (topmost trusted): "
        "dkim=pass but d=evil.example is not aligned with acme.com; dmarc=fail"
    )


def test_a_lookalike_signing_domain_is_not_aligned():
    verdict = judge(mail("mx.msp.example; dkim=pass header.d=acme.com.evil.example"))
    assert not verdict.authenticated
    assert "d=acme.com.evil.example is not aligned" in verdict.detail


def test_dmarc_pass_for_another_from_domain_does_not_count():
    verdict = judge(mail("mx.msp.example; dmarc=pass header.from=other.example"))
    assert not verdict.authenticated
    assert "header.from=other.example, not acme.com" in verdict.detail


def test_spf_pass_alone_does_not_authenticate_the_from_header():
    verdict = judge(mail("mx.msp.example; spf=pass smtp.mailfrom=acme.com"))
    assert not verdict.authenticated
    assert "no dkim result" in verdict.detail and "no dmarc result" in verdict.detail


def test_no_header_at_all_says_so():
    verdict = judge(mail())
    assert not verdict.authenticated
    assert "no Authentication-Results header" in verdict.detail
    assert "local DKIM verification is off" in verdict.detail


def test_a_passing_header_from_an_untrusted_authserv_id_is_ignored():
    forged = "forger.example; dmarc=pass header.from=acme.com; dkim=pass header.d=acme.com"
    verdict = judge(mail(forged))
    assert not verdict.authenticated
    assert "no Authentication-Results header from a trusted authserv-id" in verdict.detail
    assert "ignored Authentication-Results from untrusted authserv-id forger.example" in (
        verdict.detail
    )


def test_only_the_topmost_trusted_header_counts():
    raw = mail(
        "mx.msp.example; dkim=none; dmarc=none",
        "mx.msp.example; dmarc=pass header.from=acme.com",
    )
    verdict = judge(raw)
    assert not verdict.authenticated
    assert "(topmost trusted): dkim=none; dmarc=none" in verdict.detail
    assert "1 lower Authentication-Results header not considered" in verdict.detail


def test_untrusted_headers_above_the_trusted_one_do_not_hide_it():
    raw = mail(
        "relay.partner.example; dkim=fail header.d=acme.com",
        "mx.msp.example; dmarc=pass header.from=acme.com",
    )
    verdict = judge(raw)
    assert verdict.authenticated and verdict.method == "dmarc"
    assert "untrusted authserv-id relay.partner.example" in verdict.detail


def test_authserv_ids_compare_case_insensitively_and_accept_a_version():
    verdict = judge(mail("MX.MSP.Example 1; dmarc=pass header.from=acme.com"))
    assert verdict.authenticated


def test_folded_headers_are_read():
    raw = mail("mx.msp.example;\r\n\tdkim=pass (2048-bit key)\r\n header.d=acme.com header.s=s1")
    assert judge(raw).authenticated


def test_headers_are_read_under_the_modern_email_policy_too():
    raw = mail("mx.msp.example; dmarc=pass header.from=acme.com")
    message = email.message_from_bytes(raw, policy=policy.default)
    verdict = evaluate_authentication(
        message=message, raw=raw, from_domain="acme.com", trusted_authserv_ids=TRUSTED
    )
    assert verdict.authenticated


def test_an_unparseable_trusted_header_authenticates_nobody_and_hides_lower_ones():
    raw = mail("mx.msp.example; dkim=pass ;;; ===", "mx.msp.example; dmarc=pass")
    verdict = judge(raw)
    assert not verdict.authenticated
    assert "cannot be parsed" in verdict.detail


def test_nothing_is_trusted_when_no_authserv_id_is_configured():
    verdict = judge(mail("mx.msp.example; dmarc=pass header.from=acme.com"), trusted=[])
    assert not verdict.authenticated
    assert "TICKETPOST_TRUSTED_AUTHSERV_IDS is empty" in verdict.detail


def test_a_missing_from_domain_is_not_authenticated():
    verdict = judge(mail("mx.msp.example; dmarc=pass"), from_domain="")
    assert not verdict.authenticated and "no From domain" in verdict.detail


def test_the_from_domain_may_be_given_as_a_u_label():
    raw = mail("mx.msp.example; dkim=pass header.d=xn--bcher-kva.example")
    assert judge(raw, from_domain="bücher.example").authenticated


# --- local DKIM ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acme_key() -> DkimKey:
    return DkimKey("acme.com")


@pytest.fixture(scope="module")
def evil_key() -> DkimKey:
    return DkimKey("evil.example", selector="x")


def test_a_real_signature_verifies_locally_when_no_trusted_header_exists(acme_key):
    raw = acme_key.sign(mail())
    verdict = judge(raw, dkim_verify=True, dns=dns_for(acme_key))
    assert verdict.authenticated and verdict.method == "local-dkim"
    assert "the signature by d=acme.com s=sel1 verifies and is aligned with acme.com" in (
        verdict.detail
    )


def test_local_dkim_is_not_used_unless_switched_on(acme_key):
    verdict = judge(acme_key.sign(mail()), dns=dns_for(acme_key))
    assert not verdict.authenticated and "local DKIM verification is off" in verdict.detail


def test_an_altered_body_fails_local_verification(acme_key):
    raw = acme_key.sign(mail(body="Please reset my password")).replace(
        b"Please reset my password", b"Please wire 10,000 EUR"
    )
    verdict = judge(raw, dkim_verify=True, dns=dns_for(acme_key))
    assert not verdict.authenticated
    assert "the signature by d=acme.com s=sel1 fails (body hash mismatch" in verdict.detail


def test_a_valid_signature_of_an_unaligned_domain_does_not_authenticate(evil_key):
    verdict = judge(evil_key.sign(mail()), dkim_verify=True, dns=dns_for(evil_key))
    assert not verdict.authenticated
    assert "d=evil.example s=x verifies but is not aligned with acme.com" in verdict.detail


def test_a_signature_whose_key_is_not_published_fails(acme_key):
    verdict = judge(acme_key.sign(mail()), dkim_verify=True, dns=static_dns({}))
    assert not verdict.authenticated
    assert "the signature by d=acme.com s=sel1 fails" in verdict.detail


def test_a_key_published_for_another_key_pair_fails(acme_key):
    impostor = DkimKey("acme.com")  # same name, different key: a forger's own signature
    verdict = judge(impostor.sign(mail()), dkim_verify=True, dns=dns_for(acme_key))
    assert not verdict.authenticated and "fails" in verdict.detail


def test_any_one_aligned_signature_is_enough(acme_key, evil_key):
    raw = evil_key.sign(acme_key.sign(mail()))
    verdict = judge(raw, dkim_verify=True, dns=dns_for(acme_key, evil_key))
    assert verdict.authenticated and verdict.method == "local-dkim"


def test_a_trusted_header_decides_even_when_a_local_signature_would_verify(acme_key):
    raw = acme_key.sign(mail("mx.msp.example; dkim=fail header.d=acme.com; dmarc=fail"))
    verdict = judge(raw, dkim_verify=True, dns=dns_for(acme_key))
    assert not verdict.authenticated
    assert "dkim=fail (d=acme.com)" in verdict.detail


def test_a_message_without_signatures_says_there_is_nothing_to_verify():
    verdict = judge(mail(), dkim_verify=True, dns=static_dns({}))
    assert not verdict.authenticated and "no DKIM-Signature" in verdict.detail


def test_a_malformed_signature_header_is_a_failed_check_not_a_crash():
    raw = b"DKIM-Signature: this is ; not = a ; valid signature\r\n" + mail()
    checks = verify_signatures(raw, dns=static_dns({}))
    assert len(checks) == 1 and not checks[0].verified and checks[0].error
    assert not judge(raw, dkim_verify=True, dns=static_dns({})).authenticated


def test_the_dns_interface_receives_the_selector_record_name(acme_key):
    asked: list[bytes] = []
    published = dns_for(acme_key)

    def recording_dns(name: bytes) -> bytes | None:
        asked.append(name)
        return published(name)

    judge(acme_key.sign(mail()), dkim_verify=True, dns=recording_dns)
    assert asked == [b"sel1._domainkey.acme.com."]


def test_without_a_dns_argument_the_system_resolver_is_asked(acme_key, monkeypatch):
    import routing.auth_dkim as auth_dkim

    monkeypatch.setattr(auth_dkim, "system_dns", dns_for(acme_key))
    verdict = judge(acme_key.sign(mail()), dkim_verify=True)
    assert verdict.authenticated and verdict.method == "local-dkim"


@pytest.mark.parametrize(
    "value, authserv_id",
    [
        ("mx.msp.example; dmarc=pass", "mx.msp.example"),
        ("MX.MSP.Example 1; none", "mx.msp.example"),
        ("(relay (internal)) mx.msp.example; dkim=pass", "mx.msp.example"),
        ("mx.msp.example (note; with semicolon); dkim=pass", "mx.msp.example"),
        (" ; dkim=pass", ""),
    ],
)
def test_the_authserv_id_is_read_before_any_full_parse(value, authserv_id):
    assert authserv_id_of(value) == authserv_id


def test_a_trusted_header_with_comments_is_still_found():
    verdict = judge(mail("(checked by) mx.msp.example (2.1); dmarc=pass header.from=acme.com"))
    assert verdict.authenticated


# --- hostile input -----------------------------------------------------------------------------


def test_a_trusted_header_buried_under_a_hundred_others_is_not_believed():
    raw = mail(*[f"relay{i}.example; none" for i in range(100)], "mx.msp.example; dmarc=pass")
    verdict = judge(raw)
    assert not verdict.authenticated
    assert "relay0.example, relay1.example" in verdict.detail and "and 95 more" in verdict.detail


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=4))
def test_any_header_text_gives_a_verdict_and_never_raises(values):
    cleaned = [v.replace("\r", " ").replace("\n", " ") for v in values]
    raw = mail(*[f"mx.msp.example; {v}" for v in cleaned]) if cleaned else mail()
    verdict = judge(raw, dkim_verify=True, dns=static_dns({}))
    assert isinstance(verdict, AuthVerdict) and verdict.detail
