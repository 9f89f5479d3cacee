"""HTTP routes of alert threshold profiles."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import (
    ListOf,
    ThresholdProfileCreate,
    ThresholdProfileOut,
    ThresholdProfileUpdate,
)
from admin_api.services import threshold_profiles as service

router = APIRouter(prefix="/threshold-profiles", tags=["threshold profiles"], responses=responses())


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ThresholdProfileOut, responses=CONFLICT)
def create_threshold_profile(body: ThresholdProfileCreate, session: SessionDep, _: AdminRole):
    profile = service.create_threshold_profile(session, **body.model_dump())
    session.commit()
    return profile


@router.get("", response_model=ListOf[ThresholdProfileOut])
def list_threshold_profiles(session: SessionDep, _: AnyRole, paging: PagingDep):
    page = service.list_threshold_profiles(session, limit=paging.limit, offset=paging.offset)
    return {"items": page.items, "total": page.total}


@router.get("/{profile_id}", response_model=ThresholdProfileOut, responses=NOT_FOUND)
def get_threshold_profile(profile_id: IdPath, session: SessionDep, _: AnyRole):
    return service.get_threshold_profile(session, profile_id=profile_id)


@router.patch("/{profile_id}", response_model=ThresholdProfileOut, responses={**NOT_FOUND, **CONFLICT})
def update_threshold_profile(profile_id: IdPath, body: ThresholdProfileUpdate, session: SessionDep, _: AdminRole):
    profile = service.update_threshold_profile(
        session, profile_id=profile_id, changes=body.model_dump(exclude_unset=True)
    )
    session.commit()
    return profile


@router.delete("/{profile_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **CONFLICT})
def delete_threshold_profile(profile_id: IdPath, session: SessionDep, _: AdminRole) -> None:
    service.delete_threshold_profile(session, profile_id=profile_id)
    session.commit()
