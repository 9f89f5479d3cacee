"""Logging set-up: human text by default, one JSON object per line with LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import sys

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra={...}`` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` with the ``extra`` fields appended."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        ]
        return base + (" " + " ".join(extras) if extras else "")


class CurrentStderrHandler(logging.StreamHandler):
    """A StreamHandler writing to whatever ``sys.stderr`` is when a record is emitted.

    A handler bound to the ``sys.stderr`` of the moment it was made keeps writing to that stream
    after it is replaced or closed (a test runner's capture, a daemon's redirect): threads that log
    late (a webhook sender, a worker) then fail with "I/O operation on closed file"."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ sets it; the current one is used
        pass


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Install the root handler once, per TICKETPOST_LOG_LEVEL and TICKETPOST_LOG_FORMAT."""
    from core.settings import get_settings

    settings = get_settings()
    handler = CurrentStderrHandler()
    if (fmt or settings.log_format) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.log_level).upper())
    for noisy in ("alembic", "dramatiq", "mail.log", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
