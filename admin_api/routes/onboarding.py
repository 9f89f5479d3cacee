"""HTTP route of the "new client" wizard: one atomic call."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, SessionDep
from admin_api.routes.clients import client_out
from admin_api.routes.responses import CONFLICT, responses
from admin_api.schemas import (
    ContactOut,
    ContractOut,
    OnboardingIn,
    OnboardingOut,
    SlaOut,
    ThresholdProfileOut,
)
from admin_api.services import clients as client_service
from admin_api.services.onboarding import onboard_client

router = APIRouter(tags=["onboarding"], responses=responses(CONFLICT))


@router.post("/onboarding", status_code=status.HTTP_201_CREATED, response_model=OnboardingOut)
def onboard(body: OnboardingIn, session: SessionDep, _: AdminRole):
    """Create a client with its contract, SLA (existing or new), threshold profile and primary
    contact in one transaction: all of it, or nothing (the error names the failing part)."""
    result = onboard_client(
        session,
        client=body.client.model_dump(),
        contract=body.contract.model_dump() if body.contract else None,
        sla_id=body.sla_id,
        sla=body.sla.model_dump(mode="json") if body.sla else None,
        threshold_profile_id=body.threshold_profile_id,
        contact=body.contact.model_dump() if body.contact else None,
    )
    session.commit()
    return OnboardingOut(
        client=client_out(client_service.view(session, result.client)),
        contract=ContractOut.model_validate(result.contract) if result.contract else None,
        sla=SlaOut.model_validate(result.sla) if result.sla else None,
        threshold_profile=ThresholdProfileOut.model_validate(result.threshold_profile)
        if result.threshold_profile
        else None,
        contact=ContactOut.model_validate(result.contact) if result.contact else None,
    )
