"""Contracts of a client: the eight types of SPEC §1, same optional fields for every type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_api.services.errors import Invalid, NotFound, checked_fields
from admin_api.services.pages import Page, paginate
from models import CONTRACT_TYPES, Client, Contract, utcnow

CONTRACT_FIELDS = (
    "name", "type", "start_date", "end_date", "rate", "amount", "hours", "billing_period",
    "description",
)


def create_contract(session: Session, *, client_id: int, name: str, type: str, **fields: Any) -> Contract:
    """Add a contract to a client; raises NotFound (client) or Invalid."""
    if session.get(Client, client_id) is None:
        raise NotFound("client", client_id)
    values = _checked({"name": name, "type": type, **fields})
    contract = Contract(client_id=client_id, **values)
    _check_dates(contract)
    session.add(contract)
    session.flush()
    return contract


def update_contract(session: Session, *, contract_id: int, changes: Mapping[str, Any]) -> Contract:
    """Apply ``changes`` (only the keys given)."""
    contract = get_contract(session, contract_id=contract_id)
    for key, value in _checked(changes).items():
        setattr(contract, key, value)
    _check_dates(contract)
    contract.updated_at = utcnow()
    session.flush()
    return contract


def delete_contract(session: Session, *, contract_id: int) -> None:
    """Delete a contract; tickets that referred to it keep existing without one."""
    session.delete(get_contract(session, contract_id=contract_id))
    session.flush()


def get_contract(session: Session, *, contract_id: int) -> Contract:
    """The contract with this id; raises NotFound."""
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise NotFound("contract", contract_id)
    return contract


def list_contracts(session: Session, *, client_id: int, limit: int = 50, offset: int = 0) -> Page[Contract]:
    """A client's contracts, latest start first; NotFound for an unknown client."""
    if session.get(Client, client_id) is None:
        raise NotFound("client", client_id)
    query = (
        select(Contract)
        .where(Contract.client_id == client_id)
        .order_by(Contract.start_date.desc().nulls_last(), Contract.id.desc())
    )
    return paginate(session, query, limit=limit, offset=offset)


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    out = checked_fields(values, allowed=CONTRACT_FIELDS, what="a contract")
    if "name" in out:
        if out["name"] is None or not str(out["name"]).strip():
            raise Invalid("name", "a contract needs a name")
        out["name"] = str(out["name"]).strip()
    if "type" in out and out["type"] not in CONTRACT_TYPES:
        raise Invalid("type", f"type must be one of {', '.join(CONTRACT_TYPES)}")
    return out


def _check_dates(contract: Contract) -> None:
    if contract.start_date and contract.end_date and contract.end_date < contract.start_date:
        raise Invalid("end_date", f"end_date {contract.end_date} is before start_date {contract.start_date}")
