"""The log handler the CLI installs writes to the stderr of the moment, not of its making."""

from __future__ import annotations

import io
import logging
import sys

from ticketpost.logs import configure_logging


def test_logs_go_to_the_current_stderr_even_after_the_first_one_is_closed(monkeypatch):
    root = logging.getLogger()
    kept_handlers, kept_level = root.handlers[:], root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        configure_logging(level="INFO", fmt="text")
        logging.getLogger("ticketpost.test").info("to the first")
        first.close()  # a test runner's capture ends, a daemon redirects stderr
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("ticketpost.test").info("to the second")
    finally:
        root.handlers[:], root.level = kept_handlers, kept_level
    assert "to the second" in second.getvalue()
    assert "Logging error" not in second.getvalue()
