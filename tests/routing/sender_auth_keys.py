"""Test helper: a freshly generated DKIM key, a signer, and the DNS answers that publish it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from routing.auth_dkim import static_dns

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


@dataclass
class DkimKey:
    """An RSA key for ``domain``/``selector``; ``sign`` signs raw mail, ``dns`` publishes it."""

    domain: str
    selector: str = "sel1"
    private_pem: bytes = field(init=False, repr=False)
    txt_record: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.txt_record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def sign(self, raw: bytes) -> bytes:
        """``raw`` with a DKIM-Signature header of this key prepended."""
        signature = dkim.sign(
            raw,
            self.selector.encode(),
            self.domain.encode(),
            self.private_pem,
            include_headers=SIGNED_HEADERS,
        )
        return signature + raw


def dns_for(*keys: DkimKey):
    """A DnsLookup (routing.auth_dkim) that knows the public keys of ``keys`` and nothing else."""
    return static_dns({key.record_name: key.txt_record for key in keys})
