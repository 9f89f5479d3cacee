"""Webhook secrets and signatures as the Standard Webhooks specification defines them.

A secret is ``whsec_`` + base64 of random bytes; the signing key is the base64-decoded part
after the prefix. A message is signed over ``"{webhook-id}.{webhook-timestamp}.{body}"`` with
HMAC-SHA256; the ``webhook-signature`` header is ``v1,<base64 signature>``, several of them
separated by spaces while a rotated secret still signs alongside the new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 32


class BadSecret(ValueError):
    """Raised when a webhook secret is not ``whsec_`` + base64 of 24 to 64 bytes."""


def generate_secret() -> str:
    """A new random secret, ``whsec_`` + base64 of 32 bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret`` (the base64-decoded part after ``whsec_``); raises BadSecret."""
    if not secret.startswith(PREFIX):
        raise BadSecret("a webhook secret starts with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("the part after 'whsec_' is not valid base64") from None
    if not 24 <= len(key) <= 64:
        raise BadSecret(f"the secret must decode to 24 to 64 bytes, not {len(key)}")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`` with the key ``key``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_header(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,…`` per key, separated by spaces."""
    return " ".join(signature(k, msg_id, timestamp, body) for k in keys)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether one of the header's signatures is ``secret``'s (receivers' side; tests use it)."""
    lower = {k.lower(): v for k, v in headers.items()}
    expected = signature(secret_key(secret), lower["webhook-id"], int(lower["webhook-timestamp"]), body)
    return any(hmac.compare_digest(expected, given) for given in lower["webhook-signature"].split())
