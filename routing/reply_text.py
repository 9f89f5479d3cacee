"""The new part of a reply: its text without the quoted history and the signature (mail-parser-reply).

mail-parser-reply knows the quote headers of many languages and clients ("On ... wrote:", "Am ...
schrieb ...:", "Le ... a écrit :", Outlook's "From:/Sent:" and "Von:/Gesendet:" blocks, "-----
Original Message-----") and their signatures ("-- ", "Sent from my iPhone", "Mit freundlichen
Grüßen" ...). Chosen by measurement against quotequail and email-reply-parser (BENCHMARKS.md,
"reply_text"): it found the most.

Its patterns are used as they are; how they are run is ours, because the library's own driver
costs 16 ms for an average reply of the benchmark corpus (routing costs ~1.5 ms of CPU a message):
it compiles the patterns for every message (here: once, at import), and runs them with ``findall``/``search`` from every
character position although each can only match where a line starts. Here they are compiled once,
tried only at line starts (``Pattern.match(text, pos)``: ``^`` and ``\\A`` keep their meaning), a
quote header only at lines that can start one and only up to the first, a signature only in the
last :data:`SIGNATURE_LINES` lines of the new part. The text is read as the library reads it
(each line stripped), and the cut is made in the original text at that line.

Only mail that is a reply or a forward is read (In-Reply-To, References, or a Re:/AW:/Fwd:
prefix); for other mail, and when nothing would be left, reply_text is the whole text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from re import Pattern

from mailparser_reply.parser import EmailMessage

#: Languages whose quote headers and signatures are recognised (English always).
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs", "ja", "ko", "zh")
#: Characters of the body read for the reply; past them the text counts as new.
SCAN_LIMIT = 16_384
#: A signature is looked for in the last lines of the new part only (where signatures are; the
#: library searches everything, and then also cuts at a "Thanks," in the middle of a long text).
SIGNATURE_LINES = 20


@dataclass(frozen=True)
class _Patterns:
    header: Pattern
    signature: Pattern


def _compile() -> _Patterns:
    """mail-parser-reply's quote-header and signature patterns, compiled once (at import, ~20 ms)."""
    template = EmailMessage(text="", languages=list(LANGUAGES), keep_hyphen_lists=True)
    return _Patterns(header=template.HEADER_REGEX, signature=template.SIGNATURE_REGEX)


_PATTERNS = _compile()


def reply_text(text: str) -> str:
    """The new part of the reply ``text``: before the first quote header, without the signature.

    The whole ``text`` when no quote header or signature is found, or when nothing would be left.
    """
    if not text.strip():
        return text
    patterns = _PATTERNS
    originals = text[:SCAN_LIMIT].split("\n")
    lines = [line.strip() for line in originals]  # as the library reads them
    normal = "\n".join(lines)
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    cut = _first_line(patterns.header, normal, starts, newline_too=True, lines=_header_lines(normal, starts))
    end = cut if cut is not None else len(lines)
    if cut is None and len(text) > SCAN_LIMIT:
        return text  # no quote header in what was read: all of it is new
    new = "\n".join(lines[:end])
    signature = _first_line(patterns.signature, new, starts[:end], newline_too=False,
                            lines=range(max(0, end - SIGNATURE_LINES), end))
    if signature is not None:
        end = signature
    if cut is None and signature is None:
        return text
    reply = "\n".join(originals[:end]).strip()
    return reply or text


#: Where a quote header may be. Each of the library's header patterns is one of: a wrote-header,
#: which ends its line (or the next, when it wraps once) with ``:`` or ``：``; a "From:/Sent:" block,
#: whose first line has its colon right after a short keyword (within :data:`KEYWORD_REACH`
#: characters, quote marks included); or a ``-----Original Message-----`` style separator line.
_HEADER_HINT = re.compile(r"[:\uff1a-]")  # one character class: a C-speed scan
KEYWORD_REACH = 40


def _header_lines(normal: str, starts: list[int]) -> Iterator[int]:
    """The lines of ``normal`` (starting at ``starts``) where a quote header may start, in order.

    Found by a C-speed search for the hints above, one hint at a time, so the caller's search for
    the first header looks only at the lines above it."""
    last = -1
    position = 0
    size = len(normal)
    while True:
        hint = _HEADER_HINT.search(normal, position)
        if hint is None:
            return
        at = hint.start()
        line = bisect_right(starts, at) - 1
        begin = starts[line]
        line_end = starts[line + 1] - 1 if line + 1 < len(starts) else size
        if hint.group() == "-":
            candidates = (line,) if not normal[begin:at].strip("> ") else ()
        elif at + 1 == line_end:  # the line ends with the colon: a wrote-header, maybe wrapped
            candidates = (line - 1, line)
        elif at - begin <= KEYWORD_REACH:
            candidates = (line,)
        else:
            candidates = ()
        if not candidates:
            position = at + 1  # look on in this line
            continue
        for candidate in candidates:
            if candidate > last:
                yield candidate
                last = candidate
        position = line_end + 1


def _first_line(pattern: Pattern, normal: str, starts: list[int], *, newline_too: bool,
                lines: Iterable[int]) -> int | None:
    """The first of ``lines`` (indexes, ascending) where ``pattern`` matches ``normal`` (None: none).

    Tried at the line's start and, with ``newline_too``, at the line break before it (the
    library's header patterns begin with ``(?:^|\\n)``); a match at a line break belongs to the
    line after it.
    """
    for index in lines:
        start = starts[index]
        if newline_too and start > 0 and pattern.match(normal, start - 1):
            return index
        match = pattern.match(normal, start)
        if match:
            # a match may begin with blank lines (\\s*): the signature or header is where text starts
            found = match.group(0)
            skipped = len(found) - len(found.lstrip())
            return bisect_right(starts, start + skipped) - 1 if skipped else index
    return None
