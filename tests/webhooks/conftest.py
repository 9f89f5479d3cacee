"""Fixtures of the webhook tests: settings, a webhook row, the sender (the receiving HTTP server,
``receiver``, is in tests/conftest.py: the admin API tests use it too)."""

from __future__ import annotations

import pytest

from core.settings import Settings
from models import Webhook
from models.db import session_scope
from models.secrets import encrypt_secret
from models.webhook import events_column

SECRET_KEY = "secret-key-for-webhook-tests"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def hook_settings(database_url) -> Settings:
    """Settings that allow 127.0.0.1 targets and retry at once (min backoff 0)."""
    return Settings(database_url=database_url, secret_key=SECRET_KEY, webhooks_allow_private=True,
                    webhooks_min_backoff_s=0, webhooks_read_timeout_s=2, webhooks_connect_timeout_s=2,
                    outbox_lease_s=60)


def add_webhook(engine, url: str, events=("ticket.created",), *, secret: str = SECRET, enabled=True) -> int:
    with session_scope(engine) as s:
        hook = Webhook(url=url, events=events_column(list(events)),
                       secret_encrypted=encrypt_secret(secret, key=SECRET_KEY), enabled=enabled)
        s.add(hook)
        s.flush()
        return hook.id
