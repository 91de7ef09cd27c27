"""HTTP edge of the pricing service: request -> pricing use case -> response."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status

from foodflow.clients.inventory import InventoryClient
from foodflow.contracts.batch import BatchRequest, BatchResponse
from foodflow.contracts.errors import ERROR_RESPONSES
from foodflow.contracts.pricing import PriceBreakdown, PriceLine, PriceRequest, PriceResponse
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.app import service_app
from foodflow.platform.http.errors import batch_response, install_error_handlers
from foodflow.platform.http.probes import install_probes
from foodflow.platform.http.runtime import RuntimeSlot
from foodflow.platform.http.service_auth import ServiceTokens, allow, install_service_auth
from foodflow.platform.logs import batch_of, bind_order_id
from foodflow.platform.secrets import require
from foodflow.pricing_service import services
from foodflow.pricing_service.catalogue import CataloguePrices
from foodflow.pricing_service.domain import OrderLine, PricingError, load_rules
from foodflow.pricing_service.services import PricedOrder, PriceOrder, Pricing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PricingRuntime:
    """What the routes and probes need, built once by the lifespan."""

    inventory: InventoryClient
    pricing: Pricing


RUNTIME = RuntimeSlot(PricingRuntime)
runtime_of = RUNTIME.of


Runtime = Annotated[PricingRuntime, Depends(RUNTIME.dependency)]

router = APIRouter(responses=ERROR_RESPONSES, dependencies=[Depends(allow("order_manager"))])
# The catalogue unreachable is a 503, as PostgreSQL down is elsewhere: callers retry.
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (PricingError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ServiceUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
)


def price_order_of(body: PriceRequest) -> PriceOrder:
    return PriceOrder(
        body.order_id,
        [OrderLine(line.item_id, line.quantity, line.price) for line in body.items],
        body.promo_code,
    )


def price_response(priced: PricedOrder) -> PriceResponse:
    breakdown = priced.breakdown
    return PriceResponse(
        lines=[
            PriceLine(
                item_id=line.item_id,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.line_total,
                client_price=line.client_price,
                price_mismatch=line.price_mismatch,
            )
            for line in priced.lines
        ],
        breakdown=PriceBreakdown(
            subtotal=breakdown.subtotal,
            discount=breakdown.discount,
            delivery_fee=breakdown.delivery_fee,
            small_order_fee=breakdown.small_order_fee,
            tax=breakdown.tax,
            total=breakdown.total,
            currency=breakdown.currency,
            promo_code=breakdown.promo_code,
            promo_applied=breakdown.promo_applied,
            price_mismatches=list(breakdown.price_mismatches),
        ),
    )


@router.post("/calculate_price", response_model=PriceResponse)
async def calculate_price(body: PriceRequest, runtime: Runtime) -> PriceResponse:
    """Price an order at catalogue prices: subtotal, discounts, fees, tax and total."""
    bind_order_id(body.order_id)
    log.info("Calculating price... order_id=%s", body.order_id)
    priced = price_response(await services.price_one(runtime.pricing, price_order_of(body)))
    log.info("Final Price=%s order_id=%s", priced.breakdown.total, body.order_id)
    return priced


@router.post("/calculate_price_batch", response_model=BatchResponse[PriceResponse])
async def calculate_price_batch(body: BatchRequest[PriceRequest], runtime: Runtime) -> Response:
    """`/calculate_price` for many orders at once: one outcome per order, in order."""
    answers = await services.price_many(runtime.pricing, [price_order_of(o) for o in body.items])
    log.info(
        "Priced a batch of %d orders",
        len(answers),
        extra=batch_of(o.order_id for o in body.items if o.order_id is not None),
    )
    return batch_response(
        PriceResponse,
        [a if isinstance(a, PricingError) else price_response(a) for a in answers],
        ERROR_STATUS,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the pricing service; its lifespan loads the rules and owns the inventory client
    (the catalogue prices come from the inventory service's catalogue)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require(settings, "service_private_key", "service_public_keys")
        rules = load_rules(settings.pricing_rules_file)
        inventory = InventoryClient(
            settings, ServiceTokens.from_settings("pricing_service", settings)
        )
        try:
            app.state.runtime = PricingRuntime(
                inventory=inventory,
                pricing=Pricing(
                    catalogue=CataloguePrices(inventory),
                    rules=rules,
                    price_tolerance=settings.price_tolerance,
                ),
            )
            log.info("Pricing service ready (rules from %s)", settings.pricing_rules_file)
            yield
        finally:
            await inventory.aclose()

    async def inventory_reachable(request: Request) -> bool:
        return await runtime_of(request).inventory.reachable()

    app = service_app("foodflow pricing service", settings, lifespan=lifespan)
    install_probes(app, "pricing_service", checks={"inventory": inventory_reachable})
    install_service_auth(app, "pricing_service", settings)
    app.include_router(router)
    install_error_handlers(app, ERROR_STATUS)
    return app
