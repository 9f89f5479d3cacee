"""HTML mail turned into readable text (inscriptis) within a time bound per message.

inscriptis (lxml underneath) keeps lists as bullets, tables as aligned columns and links as
``text [url]`` (measured against selectolax and html2text: BENCHMARKS.md, "HTML to text").

No single message may stall intake (issue 15): a 138 KB body of ``'<a b="' * 23000`` took 46 s
in the old hand-written converter, and lxml itself is quadratic on some inputs (50,000 attributes
on one tag: 8 s). Two bounds, and a plain tag strip when either trips:

1. a precheck, linear and deterministic: too large, too many tags, or markup that is mostly
   unclosed tags is not given to the converter at all (the issue's input trips this one);
2. a hard time bound: the conversion runs in a helper process (pebble) that is killed when it
   overruns :data:`TIME_LIMIT`. A thread with a timeout would not do: under the GIL a thread
   cannot be stopped, and lxml's C parser does not even let a watchdog thread run until it
   returns; only ending the process ends the CPU use.

Either way :func:`html_to_text` says why in its note, which routing puts in the explanation.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import re
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

log = logging.getLogger("ticketpost.routing.html")

#: Seconds one conversion may take in the helper process before it is killed.
TIME_LIMIT = 2.0
#: HTML larger than this is stripped, not converted (characters).
MAX_SIZE = 2_000_000
#: More tags than this (counted as ``<``) is stripped, not converted.
MAX_TAGS = 60_000
#: Unclosed tag openings (``<`` without a ``>`` before the next ``<``) tolerated before the markup
#: counts as malformed and is stripped.
MAX_UNCLOSED = 1_000
#: Below this size the conversion runs in the calling process: its worst case there is measured
#: in milliseconds (BENCHMARKS.md), less than the round trip to the helper.
INLINE_SIZE = 16_384

_UNCLOSED = re.compile(r"<[^<>]*(?=<|\Z)")
_TAG = re.compile(r"<[^<>]*>")
_UNCLOSED_TAG = re.compile(r"<[A-Za-z!/?][^<>]*")
_SKIPPED = re.compile(r"(?is)<(script|style|head|title)\b[^<>]*>.*?</\1\s*>")
_BLOCK_END = re.compile(r"(?i)<(?:br|/p|/div|/li|/tr|/h[1-6]|/table|/blockquote|hr)\b[^<>]*>")
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")
_NEWLINES = re.compile(r"\n\s*\n\s*\n+")


@dataclass(frozen=True)
class HtmlText:
    """The text of an HTML body, and a note when it was only tag-stripped (why)."""

    text: str
    note: str = ""


def html_to_text(html: str) -> HtmlText:
    """Readable text of ``html``: inscriptis within the bounds, else plain tag stripping (noted)."""
    reason = precheck(html)
    if reason:
        return HtmlText(strip_tags(html), f"HTML {reason}: plain tag stripping instead of layout")
    try:
        text = _convert(html) if len(html) <= INLINE_SIZE else _pool().convert(html, TIME_LIMIT)
    except FutureTimeout:
        return HtmlText(strip_tags(html), f"HTML conversion took longer than {TIME_LIMIT:g} s and was "
                                          "stopped: plain tag stripping instead of layout")
    except Exception:  # noqa: BLE001 - helper died or converter fault: keep the words
        log.warning("HTML conversion failed; stripping tags", exc_info=True)
        return HtmlText(strip_tags(html), "HTML converter failed: plain tag stripping")
    if not text:
        stripped = strip_tags(html)
        if stripped:  # lxml gives up below 255 levels of nesting and returns nothing: keep the words
            return HtmlText(stripped, "HTML converter returned no text: plain tag stripping")
    return HtmlText(text)


def precheck(html: str) -> str:
    """Why ``html`` is not given to the converter ('' when it may be): size, tags, malformed markup."""
    if len(html) > MAX_SIZE:
        return f"of {len(html):,} characters (more than {MAX_SIZE:,})"
    tags = html.count("<")
    if tags > MAX_TAGS:
        return f"with {tags:,} tags (more than {MAX_TAGS:,})"
    if tags > MAX_UNCLOSED:
        unclosed = sum(1 for _ in _UNCLOSED.finditer(html))
        if unclosed > MAX_UNCLOSED:
            return f"with {unclosed:,} unclosed tags (malformed markup, more than {MAX_UNCLOSED:,})"
    return ""


def strip_tags(html: str) -> str:
    """Text of ``html`` by removing tags, in linear time (no nested quantifiers); entities decoded."""
    from html import unescape

    text = _SKIPPED.sub(" ", html) if "<" in html else html
    text = _BLOCK_END.sub("\n", text)
    text = _TAG.sub("", text)
    text = _UNCLOSED_TAG.sub("", text)
    text = unescape(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def _convert(html: str) -> str:
    """inscriptis' text of ``html`` (the helper process runs this too)."""
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    text = get_text(html, ParserConfig(css=CSS_PROFILES["strict"], display_links=True))
    lines = [line.rstrip() for line in text.split("\n")]
    return _NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def _warm() -> None:
    """Import the converter when a helper process starts, so its time limit counts converting only."""
    _convert("<p>warm</p>")


class _Pool:
    """The helper processes: one conversion each at a time, killed and replaced when one overruns."""

    def __init__(self) -> None:
        from pebble import ProcessPool

        # spawn: the worker and SMTP processes have threads, and fork would copy their locks
        self.pool = ProcessPool(max_workers=2, context=multiprocessing.get_context("spawn"), initializer=_warm)

    def convert(self, html: str, limit: float) -> str:
        future = self.pool.schedule(_convert, args=(html,), timeout=limit)
        # pebble's own timeout kills the process; the wait allows for queueing behind another task
        try:
            return future.result(timeout=limit * 4)
        except FutureTimeout:
            future.cancel()  # still queued or running: pebble stops its process
            raise

    def close(self) -> None:
        self.pool.stop()
        self.pool.join(timeout=5)


_lock = threading.Lock()
_shared: _Pool | None = None


def _pool() -> _Pool:
    global _shared
    with _lock:
        if _shared is None:
            _shared = _Pool()
            atexit.register(_shared.close)
        return _shared
