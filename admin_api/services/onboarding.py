"""The "new client" wizard in one call: client, contract, SLA, threshold profile, primary contact.

Everything happens in the caller's one transaction: the steps only flush, and any error leaves
nothing behind once the caller rolls back (the HTTP route commits only after every step worked).
Errors name the part of the request they come from (``client.domains.0``, ``contact.email``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from admin_api.services import clients as client_service
from admin_api.services import contacts as contact_service
from admin_api.services import contracts as contract_service
from admin_api.services import slas as sla_service
from admin_api.services import threshold_profiles as profile_service
from admin_api.services.errors import Invalid
from models import Client, Contact, Contract, Sla, ThresholdProfile

R = TypeVar("R")


@dataclass(frozen=True)
class Onboarded:
    """What the wizard created or attached."""

    client: Client
    contract: Contract | None
    sla: Sla | None
    threshold_profile: ThresholdProfile | None
    contact: Contact | None


def onboard_client(
    session: Session,
    *,
    client: Mapping[str, Any],
    contract: Mapping[str, Any] | None = None,
    sla_id: int | None = None,
    sla: Mapping[str, Any] | None = None,
    threshold_profile_id: int | None = None,
    contact: Mapping[str, Any] | None = None,
) -> Onboarded:
    """Create the client with everything it needs; the contact becomes its primary contact."""
    client_values = dict(client)
    # sla_id / threshold_profile_id may also come inside "client"; the top level wins when equal.
    nested_sla_id = client_values.pop("sla_id", None)
    nested_profile_id = client_values.pop("threshold_profile_id", None)
    if nested_sla_id is not None:
        if (sla_id is not None and sla_id != nested_sla_id) or sla is not None:
            raise Invalid(("client", "sla_id"), "the SLA is given twice; give it once, at the top level")
        sla_id = nested_sla_id
    if nested_profile_id is not None:
        if threshold_profile_id is not None and threshold_profile_id != nested_profile_id:
            raise Invalid(
                ("client", "threshold_profile_id"),
                "the threshold profile is given twice; give it once, at the top level",
            )
        threshold_profile_id = nested_profile_id
    if sla_id is not None and sla is not None:
        raise Invalid("sla", "give sla_id (an existing SLA) or sla (a new one), not both")

    chosen_sla: Sla | None = None
    if sla_id is not None:
        chosen_sla = _part("sla_id", lambda: sla_service.get_sla(session, sla_id=sla_id), as_invalid=True)
    elif sla is not None:
        chosen_sla = _part("sla", lambda: sla_service.create_sla(session, **sla))
    profile: ThresholdProfile | None = None
    if threshold_profile_id is not None:
        profile = _part(
            "threshold_profile_id",
            lambda: profile_service.get_threshold_profile(session, profile_id=threshold_profile_id),
            as_invalid=True,
        )

    new_client = _part(
        "client",
        lambda: client_service.create_client(
            session,
            **client_values,
            sla_id=chosen_sla.id if chosen_sla else None,
            threshold_profile_id=profile.id if profile else None,
        ),
    )
    new_contract = None
    if contract is not None:
        new_contract = _part(
            "contract",
            lambda: contract_service.create_contract(session, client_id=new_client.id, **contract),
        )
    new_contact = None
    if contact is not None:
        values = {k: v for k, v in contact.items() if k != "is_primary"}
        new_contact = _part(
            "contact",
            lambda: contact_service.create_contact(
                session, client_id=new_client.id, is_primary=True, **values
            ),
        )
    return Onboarded(
        client=new_client,
        contract=new_contract,
        sla=chosen_sla,
        threshold_profile=profile,
        contact=new_contact,
    )


def _part(name: str, step: Callable[[], R], *, as_invalid: bool = False) -> R:
    """Run one step; its validation errors are reported under ``name`` in the request."""
    from admin_api.services.errors import NotFound

    try:
        return step()
    except Invalid as exc:
        raise Invalid((name, *exc.loc), exc.message) from None
    except NotFound as exc:
        if as_invalid:
            raise Invalid(name, str(exc)) from None
        raise
