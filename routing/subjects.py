"""Subject lines: reply/forward prefixes in many languages, and ticket tags ``[#N]``."""

from __future__ import annotations

import re

# Reply and forward prefixes mail clients write, by language: English RE/FW/FWD, German AW/WG,
# Spanish/Portuguese RV/ENC, Scandinavian SV/VS/VB, Dutch Antw/Doorst, French TR/REF, Italian
# R/I/RIF, Polish Odp/PD, Turkish YNT/ILT, Finnish VL/VS, Greek ΑΠ/ΣΧΕΤ/ΠΡΘ, Russian Ответ/Отв/НА,
# Chinese 回复/答复/转发, Hebrew השב, and ``Re[2]:``/``Re(2):`` counters.
_PREFIX = re.compile(
    r"^\s*(?:"
    r"re|fw|fwd|aw|wg|rv|enc|sv|vs|vb|antw|antwort|doorst|tr|ref|réf|r|i|rif|odp|pd|ynt|ilt|"
    r"vl|vast|ats|atb|vá|continued|ΑΠ|ΣΧΕΤ|ΠΡΘ|Ответ|Отв|НА|Fw|回复|回覆|答复|转发|轉寄|השב|"
    r"hv|sv|bls|رد|إعادة توجيه"
    r")\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_TAG = re.compile(r"\[\s*(?:ticket\s*)?#\s*(\d{1,18})\s*\]", re.IGNORECASE)


def strip_reply_prefixes(subject: str) -> str:
    """``RE: AW: Fwd: Printer`` → ``Printer`` (also ``SV:``, ``Antw:``, ``Re[2]:`` ...)."""
    previous = None
    text = subject.strip()
    while text != previous:
        previous = text
        text = _PREFIX.sub("", text, count=1).strip()
    return text


def ticket_tags(subject: str) -> list[int]:
    """Ticket numbers tagged in the subject, ``[#42]`` or ``[Ticket#42]``, in order."""
    return [int(n) for n in _TAG.findall(subject)]


def strip_ticket_tags(subject: str) -> str:
    """The subject without its ticket tags."""
    return " ".join(_TAG.sub(" ", subject).split())


def new_ticket_subject(subject: str) -> str:
    """The subject a new ticket gets: prefixes and tags stripped, '(no subject)' when empty."""
    text = strip_reply_prefixes(strip_ticket_tags(strip_reply_prefixes(subject)))
    return text[:998] if text else "(no subject)"
