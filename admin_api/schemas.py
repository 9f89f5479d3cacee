"""Request and response bodies of the admin API (pydantic), one section per resource.

Inputs forbid unknown fields (a typo is a 422 naming it, not silently ignored); strings refuse
NUL characters and respect the column lengths, ids stay within the database's integer range, so
bad input is a 422 and never a database error.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from admin_api.services.attachments import public_list
from models import (
    CONTRACT_TYPES,
    INBOUND_STATUSES,
    OUTBOX_KINDS,
    OUTBOX_STATUSES,
    OUTCOMES,
    ROLES,
    TEMPLATE_KINDS,
    TICKET_CHANNELS,
    TICKET_STATUSES,
)
from models.business_hours import BusinessHours

MAX_ID = 2**31 - 1
NO_NUL = r"^[^\x00]*$"

T = TypeVar("T")


def Str(max_length: int, *, min_length: int = 0, strip: bool = True) -> Any:
    """A string type without NUL characters, at most ``max_length`` long."""
    return Annotated[
        str,
        StringConstraints(
            strip_whitespace=strip, min_length=min_length, max_length=max_length, pattern=NO_NUL
        ),
    ]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date-time is out of range") from None


RefId = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Str(200, min_length=1)
UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2),
    PlainSerializer(float, return_type=float, when_used="json"),
]
Hours = Annotated[
    Decimal,
    Field(ge=0, max_digits=10, decimal_places=2),
    PlainSerializer(float, return_type=float, when_used="json"),
]
Minutes = Annotated[int, Field(ge=1, le=10_000_000)]
DomainText = Str(300, min_length=1)
EmailText = Str(320, min_length=3)


class Input(BaseModel):
    """Base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    """Base of response bodies, read from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


class ListOf(BaseModel, Generic[T]):
    """One page of a list: ``items`` and the ``total`` number of matching rows."""

    items: list[T]
    total: int


class Message(BaseModel):
    """An error or status message."""

    detail: str


# --- clients and domains -------------------------------------------------------------------------


class ClientFields(Input):
    rank: Str(100) | None = Field(None, description="internal only; no effect on routing")
    business_id: Str(100) | None = None
    phone: Str(50) | None = None
    fax: Str(50) | None = None
    address: Str(2000) | None = None
    city: Str(100) | None = None
    state: Str(100) | None = None
    zip_code: Str(20) | None = None
    country: Str(100) | None = None
    notes: Str(20000, strip=False) | None = None
    sla_id: RefId | None = None
    threshold_profile_id: RefId | None = None


class ClientCreate(ClientFields):
    name: Name
    tickets_only_by_primary_contact: bool = False
    require_authenticated_sender: bool = False
    send_acknowledgements: bool = Field(True, description="acknowledge new tickets by mail (when outbound mail is configured)")
    domains: list[DomainText] = Field(default_factory=list, max_length=200)
    allow_public_domain: bool = Field(
        False, description="accept public mail providers such as gmail.com among `domains`"
    )


class ClientUpdate(ClientFields):
    name: Name | None = None
    tickets_only_by_primary_contact: bool | None = None
    require_authenticated_sender: bool | None = None
    send_acknowledgements: bool | None = None
    domains: list[DomainText] | None = Field(
        None, max_length=200, description="when given, replaces the client's domains"
    )
    allow_public_domain: bool = False


class ClientOut(Output):
    id: int
    name: str
    rank: str | None
    domains: list[str]
    primary_contact_id: int | None
    business_id: str | None
    phone: str | None
    fax: str | None
    address: str | None
    city: str | None
    state: str | None
    zip_code: str | None
    country: str | None
    notes: str | None
    tickets_only_by_primary_contact: bool
    require_authenticated_sender: bool
    send_acknowledgements: bool
    sla_id: int | None
    threshold_profile_id: int | None
    created_at: datetime
    updated_at: datetime


class DomainCreate(Input):
    domain: DomainText
    allow_public_domain: bool = False


class DomainOut(Output):
    id: int
    client_id: int
    domain: str


class DomainRoute(BaseModel):
    """How mail from a sender domain routes: to which client, by which registered domain."""

    domain: str = Field(description="the sender domain asked about, normalised")
    client_id: int
    client_name: str
    matched_domain: str = Field(description="the registered client domain that matched")
    exact: bool = Field(description="true when the sender domain is the registered domain itself")


# --- contracts -----------------------------------------------------------------------------------

ContractType = Literal[CONTRACT_TYPES]  # type: ignore[valid-type]


class ContractFields(Input):
    start_date: date | None = None
    end_date: date | None = None
    rate: Money | None = None
    amount: Money | None = None
    hours: Hours | None = None
    billing_period: Str(40) | None = None
    description: Str(20000, strip=False) | None = None


class ContractCreate(ContractFields):
    name: Name
    type: ContractType

    @model_validator(mode="after")
    def _dates(self):
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class ContractUpdate(ContractFields):
    name: Name | None = None
    type: ContractType | None = None


class ContractOut(Output):
    id: int
    client_id: int
    name: str
    type: str
    start_date: date | None
    end_date: date | None
    rate: Money | None
    amount: Money | None
    hours: Hours | None
    billing_period: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime


# --- SLAs and threshold profiles -----------------------------------------------------------------


class SlaCreate(Input):
    name: Name
    first_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None
    business_hours: BusinessHours | None = Field(None, description="null = 24x7")

    @model_validator(mode="after")
    def _one_target(self):
        if self.first_response_minutes is None and self.resolution_minutes is None:
            raise ValueError("give first_response_minutes, resolution_minutes or both")
        return self


class SlaUpdate(Input):
    name: Name | None = None
    first_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None
    business_hours: BusinessHours | None = None


class SlaOut(Output):
    id: int
    name: str
    first_response_minutes: int | None
    resolution_minutes: int | None
    business_hours: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


ThresholdKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
ThresholdValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


class ThresholdProfileCreate(Input):
    name: Name
    description: Str(20000, strip=False) | None = None
    thresholds: dict[ThresholdKey, ThresholdValue] = Field(
        default_factory=dict,
        max_length=200,
        description="numeric limits, e.g. cpu_percent, memory_percent, disk_free_percent, offline_minutes",
    )


class ThresholdProfileUpdate(Input):
    name: Name | None = None
    description: Str(20000, strip=False) | None = None
    thresholds: dict[ThresholdKey, ThresholdValue] | None = Field(None, max_length=200)


class ThresholdProfileOut(Output):
    id: int
    name: str
    description: str | None
    thresholds: dict[str, float]
    created_at: datetime
    updated_at: datetime


# --- contacts ------------------------------------------------------------------------------------


class ContactFields(Input):
    phone: Str(50) | None = None
    mobile_phone: Str(50) | None = None
    job_title: Str(100) | None = None


class ContactCreate(ContactFields):
    first_name: Str(100, min_length=1)
    last_name: Str(100, min_length=1)
    email: EmailText
    is_primary: bool = False
    ignore_email: bool = Field(False, description="mail from this contact never opens tickets")


class ContactUpdate(ContactFields):
    first_name: Str(100, min_length=1) | None = None
    last_name: Str(100, min_length=1) | None = None
    email: EmailText | None = None
    is_primary: bool | None = Field(
        None, description="true makes this the client's primary contact and demotes the previous one"
    )
    ignore_email: bool | None = None
    client_id: RefId | None = Field(None, description="move the contact to another client")


class ContactOut(Output):
    id: int
    client_id: int
    first_name: str
    last_name: str
    email: str
    phone: str | None
    mobile_phone: str | None
    job_title: str | None
    is_primary: bool
    ignore_email: bool
    auto_created: bool
    created_at: datetime
    updated_at: datetime


# --- onboarding ----------------------------------------------------------------------------------


class OnboardingContact(ContactFields):
    first_name: Str(100, min_length=1)
    last_name: Str(100, min_length=1)
    email: EmailText
    ignore_email: bool = False
    is_primary: bool = Field(True, description="accepted for symmetry; this contact always becomes primary")


class OnboardingIn(Input):
    """The "new client" wizard: everything is created in one transaction, or nothing is."""

    client: ClientCreate
    contract: ContractCreate | None = None
    sla_id: RefId | None = Field(None, description="attach an existing SLA …")
    sla: SlaCreate | None = Field(None, description="… or create a new one (not both)")
    threshold_profile_id: RefId | None = None
    contact: OnboardingContact | None = Field(None, description="becomes the primary contact")


class OnboardingOut(BaseModel):
    client: ClientOut
    contract: ContractOut | None
    sla: SlaOut | None
    threshold_profile: ThresholdProfileOut | None
    contact: ContactOut | None


# --- tickets -------------------------------------------------------------------------------------

TicketStatus = Literal[TICKET_STATUSES]  # type: ignore[valid-type]
TicketChannel = Literal[TICKET_CHANNELS]  # type: ignore[valid-type]


class TicketCreate(Input):
    contact_id: RefId
    subject: Str(998, min_length=1)
    body: Str(1_000_000, strip=False) = ""
    channel: Literal["api", "portal"] = "api"


class TicketUpdate(Input):
    subject: Str(998, min_length=1) | None = None
    status: TicketStatus | None = None
    client_id: RefId | None = Field(None, description="assign a triaged ticket to a client")
    contact_id: RefId | None = None
    contract_id: RefId | None = None


class TicketOut(Output):
    id: int
    number: int | None
    client_id: int | None
    contact_id: int | None
    subject: str
    status: str
    channel: str
    contract_id: int | None
    sla: dict[str, Any] | None = Field(validation_alias="sla_snapshot")
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AttachmentOut(BaseModel):
    """A file of a ticket message; download: ``GET /tickets/{id}/messages/{message_id}/attachments/{index}``."""

    index: int
    filename: str
    content_type: str
    size: int
    sha256: str | None = Field(description="SHA-256 of the bytes as sent (null for messages routed before it was kept)")
    inline: bool = Field(description="shown in the message body (Content-Disposition inline, or an image the HTML refers to by Content-ID)")
    content_id: str | None


class TicketMessageOut(Output):
    id: int
    inbound_id: int | None
    message_id: str | None
    sender_email: str | None
    body_text: str
    reply_text: str = Field(description="the new part of a reply: no quoted history, no signature; "
                                        "the whole body_text when nothing would be left or the mail is no reply")
    attachments: list[AttachmentOut]
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return value
        return {
            "id": value.id, "inbound_id": value.inbound_id, "message_id": value.message_id,
            "sender_email": value.sender_email, "body_text": value.body_text,
            "reply_text": value.reply_text if value.reply_text is not None else value.body_text,
            "attachments": public_list(value.attachments), "created_at": value.created_at,
        }


class TicketDetail(TicketOut):
    messages: list[TicketMessageOut]


class PortalAttachmentOut(AttachmentOut):
    message_id: int = Field(description="the ticket message (its id) the file belongs to")


class PortalTicketOut(TicketOut):
    """A ticket in the portal view, with the files of its messages (of this ticket only)."""

    attachments: list[PortalAttachmentOut] = []


# --- inbound -------------------------------------------------------------------------------------

InboundStatus = Literal[INBOUND_STATUSES]  # type: ignore[valid-type]
Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]


class InboundOut(Output):
    id: int
    source: str
    envelope_from: str | None
    envelope_to: list[str]
    size: int
    sha256: str
    message_id: str | None
    sender_email: str | None
    subject: str | None
    received_at: datetime
    status: str
    outcome: str | None
    reason: str | None
    client_id: int | None
    contact_id: int | None
    ticket_id: int | None
    attempts: int
    routed_at: datetime | None


class InboundDetail(InboundOut):
    explanation: list[Any]


# --- mailboxes -----------------------------------------------------------------------------------

Security = Literal["ssl", "starttls", "none"]
Port = Annotated[int, Field(ge=1, le=65535)]


def _no_nul_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None and "\x00" in value.get_secret_value():
        raise ValueError("the secret contains a NUL character")
    return value


Secret = Annotated[SecretStr, Field(min_length=1, max_length=20000), AfterValidator(_no_nul_secret)]
Kind = Literal["imap", "graph"]
Auth = Literal["password", "oauth2"]


class OAuth2Settings(Input):
    """How an ``auth: oauth2`` mailbox gets its access tokens (SPEC §9); secrets are write-only."""

    provider: Literal["microsoft", "google", "generic"] | None = None
    tenant_id: Str(200, min_length=1) | None = Field(None, description="microsoft: directory id or domain")
    client_id: Str(500, min_length=1) | None = None
    client_secret: Secret | None = Field(
        None, description="write-only; grant service_account: the service account's JSON key"
    )
    scope: Str(1000) | None = Field(None, description="provider default when absent")
    grant: Literal["client_credentials", "refresh_token", "service_account"] | None = Field(
        None, description="default client_credentials (microsoft, generic), refresh_token (google)"
    )
    refresh_token: Secret | None = Field(None, description="write-only; delegated grant")
    authority_url: Str(500, min_length=1) | None = Field(
        None, description="login host for national clouds, e.g. https://login.microsoftonline.us"
    )
    token_url: Str(1000, min_length=1) | None = Field(
        None, description="the whole token endpoint; wins over authority_url"
    )

    def plain(self, *, exclude_unset: bool = False) -> dict:
        """The settings with secrets as plain strings (for the service layer)."""
        values = self.model_dump(exclude_unset=exclude_unset)
        for key in ("client_secret", "refresh_token"):
            if values.get(key) is not None:
                values[key] = values[key].get_secret_value()
            elif key in values and values[key] is None and exclude_unset:
                del values[key]
        return values


class MailboxCreate(Input):
    name: Name
    kind: Kind = "imap"
    auth: Auth | None = Field(None, description="default password; oauth2 for graph or with oauth2")
    host: Str(253, min_length=1) | None = Field(None, description="IMAP server (imap mailboxes)")
    port: Port | None = Field(None, description="default 993 for ssl, 143 otherwise")
    security: Security = "ssl"
    username: Str(320, min_length=1) | None = Field(None, description="IMAP login (imap mailboxes)")
    password: Secret | None = Field(None, description="write-only (auth password)")
    oauth2: OAuth2Settings | None = None
    user: Str(320, min_length=1) | None = Field(None, description="graph: UPN or id of the mailbox")
    graph_base_url: Str(500, min_length=1) | None = Field(
        None, description="graph: host override, without /v1.0 (default https://graph.microsoft.com)"
    )
    folder: Str(200, min_length=1) = "INBOX"
    processed_folder: Str(200) | None = Field(
        None, description="move processed mail here; null = flag \\Seen (graph: isRead) and leave it"
    )
    enabled: bool = True
    since: UtcDateTime | None = Field(
        None, description="take in mail received since then; default: only mail arriving from now on"
    )


class MailboxUpdate(Input):
    name: Name | None = None
    auth: Auth | None = None
    host: Str(253, min_length=1) | None = None
    port: Port | None = None
    security: Security | None = None
    username: Str(320, min_length=1) | None = None
    password: Secret | None = Field(None, description="write-only")
    oauth2: OAuth2Settings | None = Field(
        None, description="the fields given change; secrets left out are kept"
    )
    user: Str(320, min_length=1) | None = None
    graph_base_url: Str(500, min_length=1) | None = None
    folder: Str(200, min_length=1) | None = None
    processed_folder: Str(200) | None = None
    enabled: bool | None = None
    since: UtcDateTime | None = None


class OAuth2Out(Output):
    provider: str | None
    tenant_id: str | None
    client_id: str | None
    has_client_secret: bool
    scope: str | None
    grant: str | None
    has_refresh_token: bool
    authority_url: str | None
    token_url: str | None


class MailboxOut(Output):
    id: int
    name: str
    kind: str
    auth: str
    host: str
    port: int | None
    security: str
    username: str
    user: str | None = Field(None, description="graph: the mailbox user")
    graph_base_url: str | None = None
    has_password: bool
    oauth2: OAuth2Out | None = None
    folder: str
    processed_folder: str | None
    enabled: bool
    since: datetime | None
    uidvalidity: int | None
    last_uid: int | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    auth_error: str | None = Field(None, description="the provider's error while auth_failed")
    consecutive_failures: int
    health: Literal["ok", "failing", "auth_failed", "never_polled", "disabled"] = Field(
        description="disabled; auth_failed (the provider refused our credentials: see auth_error); "
        "failing (last attempt failed); never_polled; ok"
    )
    created_at: datetime
    updated_at: datetime


# --- tokens --------------------------------------------------------------------------------------

Role = Literal[ROLES]  # type: ignore[valid-type]


class TokenCreate(Input):
    name: Name
    role: Role


class TokenOut(Output):
    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token; shown only in this response, never again")


# --- outbox and templates ------------------------------------------------------------------------

OutboxKind = Literal[OUTBOX_KINDS]  # type: ignore[valid-type]
OutboxStatus = Literal[OUTBOX_STATUSES]  # type: ignore[valid-type]
TemplateKind = Literal[TEMPLATE_KINDS]  # type: ignore[valid-type]


class OutboxOut(Output):
    """One outbound message (SPEC §10): what it is, to whom, how far it got, why it failed."""

    id: int
    kind: str
    status: str
    recipient: str | None
    ticket_id: int | None
    inbound_id: int | None
    client_id: int | None
    message_id: str | None
    attempts: int
    reason: str | None
    last_status_code: int | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None


class TemplateIn(Input):
    subject: Str(2000, min_length=1, strip=False)
    body_text: Str(50000, min_length=1, strip=False)
    body_html: Str(50000, strip=False) | None = None


class TemplateOut(BaseModel):
    kind: str
    client_id: int
    subject: str
    body_text: str
    body_html: str | None
    is_default: bool = Field(description="true: the installation default (the client has no override)")


# --- webhooks (SPEC §11) ---------------------------------------------------------------------------

WebhookEvent = Literal["ticket.created", "ticket.updated", "inbound.rejected", "inbound.failed", "outbox.failed",
                       "mailbox.unhealthy"]


class WebhookCreate(Input):
    url: Str(2000, min_length=1)
    events: list[WebhookEvent] = Field(min_length=1, max_length=20)
    secret: Secret | None = Field(None, description="write-only; whsec_ + base64 (24-64 bytes); generated "
                                  "and shown once in the answer when absent")
    enabled: bool = True
    description: Str(500) | None = None


class WebhookUpdate(Input):
    url: Str(2000, min_length=1) | None = None
    events: list[WebhookEvent] | None = Field(None, min_length=1, max_length=20)
    secret: Secret | None = Field(None, description="write-only; a new secret: the old one keeps signing "
                                  "alongside for TICKETPOST_WEBHOOKS_ROTATION_GRACE")
    rotate: bool = Field(False, description="true: generate a new secret (shown once in the answer); the old "
                         "one keeps signing alongside for the grace period")
    enabled: bool | None = None
    description: Str(500) | None = None


class WebhookOut(BaseModel):
    """A webhook (never its secret, except ``secret`` once, right after it was generated)."""

    id: int
    url: str
    events: list[str]
    enabled: bool
    description: str | None
    secret: str | None = Field(None, description="only in the answer that generated it; never again")
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class WebhookAttemptOut(Output):
    attempt: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


class WebhookDeliveryOut(BaseModel):
    """One delivery (an outbox row of kind webhook) with its attempts, oldest first."""

    id: int
    webhook_id: int
    event: str | None
    webhook_message_id: str | None = Field(description="the webhook-id header, the same on every retry")
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    ticket_id: int | None
    inbound_id: int | None
    payload: dict | None
    attempt_log: list[WebhookAttemptOut]
