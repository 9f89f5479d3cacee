"""The texts of the mail ticketpost sends: sandboxed Jinja2 templates, defaults and overrides.

Each kind (:data:`models.TEMPLATE_KINDS`) has a subject, a plain-text body and an optional HTML
body. The installation defaults ship in ``routing/outbox/defaults/`` (``KIND.subject``,
``KIND.txt``, ``KIND.html``); a client may override a kind through the API. Templates run in
Jinja2's ``ImmutableSandboxedEnvironment`` (no attribute tricks, no mutation) with
``StrictUndefined``: :func:`check_template` renders a candidate against sample values when it is
saved, so a mistake is a 422 then, never a failed send later. Should a stored override still fail
at send time, the default is used and the failure is logged.

Variables: ``ticket`` (number, subject, status, first_response_due_at, resolution_due_at,
created_at), ``subject`` (the subject the person wrote), ``client`` (name; None for an unknown
sender), ``contact`` (first_name, last_name, name, email), ``recipient``, ``reply_address``,
``rule`` (for a notice: the rule that refused the mail, in words).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from models import TEMPLATE_KINDS

MAX_TEMPLATE_CHARS = 50_000


class TemplateInvalid(ValueError):
    """Raised when a template does not compile or render; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TemplateSet:
    """The three parts of one kind's template (``html`` None = plain text only)."""

    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A rendered mail: one-line subject, plain text and optional HTML."""

    subject: str
    text: str
    html: str | None


def _datetime(value, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.astimezone(timezone.utc).strftime(fmt)


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape,
                                        keep_trailing_newline=True)
    env.filters["datetime"] = _datetime
    return env


_TEXT = _environment(False)
_HTML = _environment(True)


@lru_cache(maxsize=None)
def default_template(kind: str) -> TemplateSet:
    """The installation default of ``kind``, shipped in the package."""
    if kind not in TEMPLATE_KINDS:
        raise KeyError(kind)
    folder = resources.files("routing.outbox") / "defaults"

    def read(name: str) -> str | None:
        path = folder / name
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return TemplateSet(subject=(read(f"{kind}.subject") or "").strip(), text=read(f"{kind}.txt") or "",
                       html=read(f"{kind}.html"))


@lru_cache(maxsize=512)
def _compile(source: str, html: bool):
    return (_HTML if html else _TEXT).from_string(source)


def render(template: TemplateSet, values: dict) -> Rendered:
    """Render ``template`` with ``values``; raise TemplateInvalid naming the part at fault."""
    parts = {}
    for field, source, html in (("subject", template.subject, False), ("body_text", template.text, False),
                                ("body_html", template.html, True)):
        if source is None:
            parts[field] = None
            continue
        try:
            parts[field] = _compile(source, html).render(values)
        except TemplateError as exc:
            raise TemplateInvalid(field, f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a filter or value fault is the template's fault too
            raise TemplateInvalid(field, f"{type(exc).__name__}: {exc}") from None
    subject = " ".join((parts["subject"] or "").split())
    return Rendered(subject=subject, text=parts["body_text"] or "", html=parts["body_html"])


def sample_values(kind: str) -> dict:
    """Values like the real ones, to try a template with when it is saved."""
    now = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)
    return {
        "ticket": {"number": 1234, "subject": "Printer on floor 2 is offline", "status": "open",
                   "first_response_due_at": now, "resolution_due_at": now, "created_at": now},
        "subject": "Printer on floor 2 is offline",
        "client": {"name": "Acme Corp"},
        "contact": {"first_name": "Alice", "last_name": "Example", "name": "Alice Example",
                    "email": "alice@acme.example"},
        "recipient": "alice@acme.example",
        "reply_address": "support@msp.example",
        "rule": "Acme Corp opens tickets by e-mail only from its primary contact.",
        "kind": kind,
    }


def check_template(kind: str, template: TemplateSet) -> None:
    """Raise TemplateInvalid unless ``template`` compiles, renders sample values, has a subject."""
    for field, source in (("subject", template.subject), ("body_text", template.text),
                          ("body_html", template.html)):
        if source is not None and len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateInvalid(field, f"longer than {MAX_TEMPLATE_CHARS} characters")
    rendered = render(template, sample_values(kind))
    if not rendered.subject:
        raise TemplateInvalid("subject", "renders to an empty subject")
    if not rendered.text.strip():
        raise TemplateInvalid("body_text", "renders to an empty text")
