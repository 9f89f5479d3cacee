"""HTTP routes of contracts."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import NOT_FOUND, responses
from admin_api.schemas import ContractCreate, ContractOut, ContractUpdate, ListOf
from admin_api.services import contracts as service

router = APIRouter(tags=["contracts"], responses=responses(NOT_FOUND))


@router.post("/clients/{client_id}/contracts", status_code=status.HTTP_201_CREATED, response_model=ContractOut)
def create_contract(client_id: IdPath, body: ContractCreate, session: SessionDep, _: AdminRole):
    contract = service.create_contract(session, client_id=client_id, **body.model_dump())
    session.commit()
    return contract


@router.get("/clients/{client_id}/contracts", response_model=ListOf[ContractOut])
def list_contracts(client_id: IdPath, session: SessionDep, _: AnyRole, paging: PagingDep):
    page = service.list_contracts(session, client_id=client_id, limit=paging.limit, offset=paging.offset)
    return {"items": page.items, "total": page.total}


@router.get("/contracts/{contract_id}", response_model=ContractOut)
def get_contract(contract_id: IdPath, session: SessionDep, _: AnyRole):
    return service.get_contract(session, contract_id=contract_id)


@router.patch("/contracts/{contract_id}", response_model=ContractOut)
def update_contract(contract_id: IdPath, body: ContractUpdate, session: SessionDep, _: AdminRole):
    changes = body.model_dump(exclude_unset=True)
    contract = service.update_contract(session, contract_id=contract_id, changes=changes)
    session.commit()
    return contract


@router.delete("/contracts/{contract_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_contract(contract_id: IdPath, session: SessionDep, _: AdminRole) -> None:
    service.delete_contract(session, contract_id=contract_id)
    session.commit()
