"""The domain model of ticketpost (SPEC §1); nothing here imports routing, ingest or the API."""

from models.base import Base, utcnow
from models.client import Client, ClientDomain
from models.contact import Contact
from models.contract import CONTRACT_TYPES, Contract
from models.inbound import INBOUND_STATUSES, OUTCOMES, InboundMessage
from models.mailbox import (
    MAILBOX_AUTHS, MAILBOX_KINDS, OAUTH2_GRANTS, OAUTH2_PROVIDERS, GraphMessage, Mailbox,
)
from models.outbox import OUTBOX_KINDS, OUTBOX_STATUSES, TEMPLATE_KINDS, ClientTemplate, OutboxItem
from models.sla import Sla, ThresholdProfile
from models.ticket import TICKET_CHANNELS, TICKET_STATUSES, OutboundMessage, Ticket, TicketMessage
from models.token import ROLES, ApiToken
from models.webhook import TEST_EVENT, WEBHOOK_EVENTS, Webhook, WebhookAttempt

__all__ = [
    "Base", "utcnow", "Client", "ClientDomain", "Contact", "CONTRACT_TYPES", "Contract",
    "INBOUND_STATUSES", "OUTCOMES", "InboundMessage", "Mailbox",
    "GraphMessage", "MAILBOX_AUTHS", "MAILBOX_KINDS", "OAUTH2_GRANTS", "OAUTH2_PROVIDERS", "Sla", "ThresholdProfile",
    "TICKET_CHANNELS", "TICKET_STATUSES", "OutboundMessage", "Ticket", "TicketMessage", "ROLES",
    "ApiToken", "OUTBOX_KINDS", "OUTBOX_STATUSES", "TEMPLATE_KINDS", "ClientTemplate", "OutboxItem",
    "TEST_EVENT", "WEBHOOK_EVENTS", "Webhook", "WebhookAttempt",
]
