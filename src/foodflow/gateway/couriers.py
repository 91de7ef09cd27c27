"""Courier accounts (created by operators, each bound to one courier of the delivery service)
and a courier's own view of the delivery they carry."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from foodflow.contracts.delivery import CourierAssignment
from foodflow.gateway import services
from foodflow.gateway.auth import CurrentUser, staff_user
from foodflow.gateway.deps import Delivery, PasswordHashing, Repository
from foodflow.gateway.schemas import CourierAccountCreate, UserPublic

router = APIRouter(tags=["couriers"])


@router.post(
    "/couriers/accounts",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(staff_user)],
    responses={
        409: {"description": "The email is taken"},
        422: {"description": "No such courier at the delivery service"},
        503: {"description": "The delivery service cannot say which couriers exist"},
    },
)
async def create_courier_account(
    body: CourierAccountCreate,
    repository: Repository,
    passwords: PasswordHashing,
    delivery: Delivery,
) -> UserPublic:
    """Operators: a courier's account, bound to a courier of `GET /dashboard/couriers`."""
    return await services.create_courier_account(repository, passwords, delivery, body)


@router.get(
    "/couriers/me",
    response_model=CourierAssignment,
    responses={
        403: {"description": "Not a courier account, or one bound to no courier"},
        503: {"description": "The delivery service cannot say"},
    },
)
async def my_delivery(
    user: CurrentUser, repository: Repository, delivery: Delivery
) -> CourierAssignment:
    """Couriers: where I am and the delivery I carry now (pickup and drop-off points), if any."""
    return await services.my_delivery(repository, delivery, user)
