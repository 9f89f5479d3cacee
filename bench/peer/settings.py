"""Django settings for django-helpdesk in the benchmark: one database, no outgoing mail.

Read from the environment the harness sets: ``PEER_DATABASE_URL`` (``postgresql://user@host:port/
name`` or ``sqlite:////path``) and ``PEER_MEDIA_ROOT`` (where django-helpdesk stores attachments).
"""

import os
from urllib.parse import urlsplit

_url = urlsplit(os.environ["PEER_DATABASE_URL"])
if _url.scheme.startswith("sqlite"):
    # The same pragmas ticketpost sets on its SQLite connections (models/db.py), so the engine
    # settings are the same on both sides.
    _database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _url.path[1:] or ":memory:",
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA busy_timeout=30000;",
            "transaction_mode": "IMMEDIATE",
        },
    }
else:
    _database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": str(_url.port or 5432),
    }

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False  # DEBUG=True would keep every SQL query in memory
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
SITE_ID = 1
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": _database}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.messages",
    "django.contrib.humanize",
    "rest_framework",
    "helpdesk",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
ROOT_URLCONF = "bench.peer.urls"
MEDIA_ROOT = os.environ.get("PEER_MEDIA_ROOT", "/tmp/peer-media")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"

# Sending e-mail off: django-helpdesk still renders its notification mails, nothing leaves.
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
DEFAULT_FROM_EMAIL = "support@msp.example"

HELPDESK_TEAMS_MODE_ENABLED = False  # pinax-teams is an optional extra we do not install
