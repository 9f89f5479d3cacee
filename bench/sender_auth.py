"""Benchmark: what one sender-authentication verdict costs (routing.authentication).

Run: ``.venv/bin/python -m bench.sender_auth [--seconds 3]``. Prints verdicts per second for:
a trusted ``dmarc=pass`` header; a trusted failing header under 20 untrusted ones; local DKIM
verification of a real 2048-bit RSA signature (in-memory DNS, so no network time is included);
and the same signature over an altered body. One core, one process.
"""

from __future__ import annotations

import argparse
import base64
import email
import time
from email import policy

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from routing.auth_dkim import static_dns
from routing.authentication import evaluate_authentication

TRUSTED = ["mx.msp.example"]


def _mail(*auth_results: str, body: str = "The printer is on fire.\r\n" * 40) -> bytes:
    head = [f"Authentication-Results: {v}" for v in auth_results]
    head += [
        "From: Alice <alice@acme.com>",
        "To: support@msp.example",
        "Subject: printer",
        "Date: Fri, 27 Nov 2026 10:00:00 +0000",
        "Message-ID: <bench@acme.com>",
        "",
    ]
    return ("\r\n".join(head) + "\r\n" + body).encode()


def _signed(raw: bytes) -> tuple[bytes, object]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    dns = static_dns({"s1._domainkey.acme.com": b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)})
    signed = dkim.sign(raw, b"s1", b"acme.com", pem, include_headers=[b"from", b"subject"]) + raw
    return signed, dns


def _rate(raw: bytes, seconds: float, expect: bool, **kw) -> float:
    message = email.message_from_bytes(raw, policy=policy.compat32)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        verdict = evaluate_authentication(
            message=message, raw=raw, from_domain="acme.com", trusted_authserv_ids=TRUSTED, **kw
        )
        assert verdict.authenticated is expect, verdict.detail
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    signed, dns = _signed(_mail())
    tampered = signed.replace(b"on fire", b"on ice!")
    local = {"dkim_verify": True, "dns": dns}
    cases = [
        ("trusted header, dmarc=pass", _mail("mx.msp.example; dmarc=pass header.from=acme.com"),
         True, {}),
        ("trusted header failing, 20 untrusted above",
         _mail(*[f"relay{i}.example; dkim=pass header.d=acme.com" for i in range(20)],
               "mx.msp.example; dkim=pass header.d=evil.example; dmarc=fail"), False, {}),
        ("local DKIM, RSA-2048 signature verifies", signed, True, local),
        ("local DKIM, body altered", tampered, False, local),
    ]
    for label, raw, expect, kw in cases:
        print(f"{label:45s} {_rate(raw, args.seconds, expect, **kw):10,.0f} verdicts/s")


if __name__ == "__main__":
    main()
