"""Encryption at rest of secrets we must give back later (IMAP passwords), keyed by SECRET_KEY.

``TICKETPOST_SECRET_KEY`` may be any string: a proper Fernet key (32 url-safe base64 bytes) is used
as is, anything else is stretched with SHA-256 into one. Losing or changing the key makes stored
passwords unreadable (``decrypt_secret`` raises ``SecretUndecryptable``); re-enter them then.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyMissing(Exception):
    """Raised when a password must be stored but TICKETPOST_SECRET_KEY is not set."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "TICKETPOST_SECRET_KEY is not set: it encrypts stored mailbox passwords. Set it to "
            "a long random string (e.g. `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`) "
            "and keep it: passwords stored with one key cannot be read with another."
        )


class SecretUndecryptable(Exception):
    """Raised when a stored secret cannot be decrypted with the configured key (wrong or changed)."""


def fernet_key(key: str) -> bytes:
    """The Fernet key for ``key``: the key itself when it is one, else urlsafe-b64(SHA-256(key))."""
    if not key:
        raise SecretKeyMissing()
    raw = key.encode("utf-8")
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    except (binascii.Error, ValueError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def encrypt_secret(plain: str, *, key: str | None) -> bytes:
    """Encrypt ``plain`` for storage; raises SecretKeyMissing when ``key`` is empty or None."""
    if not key:
        raise SecretKeyMissing()
    return Fernet(fernet_key(key)).encrypt(plain.encode("utf-8"))


def decrypt_secret(blob: bytes, *, key: str | None) -> str:
    """Decrypt what ``encrypt_secret`` stored; raises SecretKeyMissing or SecretUndecryptable."""
    if not key:
        raise SecretKeyMissing("TICKETPOST_SECRET_KEY is not set, so stored passwords cannot be read")
    try:
        return Fernet(fernet_key(key)).decrypt(bytes(blob)).decode("utf-8")
    except InvalidToken:
        raise SecretUndecryptable(
            "a stored password cannot be decrypted with TICKETPOST_SECRET_KEY "
            "(the key changed?); set the password again"
        ) from None
