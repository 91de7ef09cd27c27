"""HTTP edge of the pricing service: request -> domain `price_order` -> response."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request, Response, status

from foodflow.contracts.batch import BatchRequest, BatchResponse
from foodflow.contracts.errors import ERROR_RESPONSES
from foodflow.contracts.pricing import PriceBreakdown, PriceLine, PriceRequest, PriceResponse
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.pool import create_pool
from foodflow.platform.http.errors import batch_response, install_error_handlers
from foodflow.platform.http.probes import database_health_router
from foodflow.platform.logs import bind_order_id
from foodflow.platform.metrics import install_metrics
from foodflow.pricing_service.catalogue import CataloguePrices
from foodflow.pricing_service.domain import (
    OrderLine,
    PricingError,
    PricingRules,
    load_rules,
    price_order,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PricingContext:
    """What the routes need, built once by the lifespan."""

    pool: asyncpg.Pool
    rules: PricingRules
    catalogue: CataloguePrices
    price_tolerance: Decimal


async def get_context(request: Request) -> PricingContext:  # async: no thread-pool hop
    context: PricingContext = request.app.state.pricing
    return context


Context = Annotated[PricingContext, Depends(get_context)]

router = APIRouter(responses=ERROR_RESPONSES)
ERROR_STATUS = ((PricingError, status.HTTP_422_UNPROCESSABLE_CONTENT),)


def price_request(
    body: PriceRequest, catalogue_prices: Mapping[str, Decimal], context: PricingContext
) -> PriceResponse:
    """Price one order at the catalogue prices given: the lines and the breakdown."""
    lines, breakdown = price_order(
        [OrderLine(line.item_id, line.quantity, line.price) for line in body.items],
        catalogue_prices,
        context.rules,
        body.promo_code,
        price_tolerance=context.price_tolerance,
    )
    for line in lines:
        if line.price_mismatch:
            log.warning(
                "Price mismatch for %s: client sent %s, catalogue price %s charged order_id=%s",
                line.item_id,
                line.client_price,
                line.unit_price,
                body.order_id,
            )
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
            for line in lines
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
async def calculate_price(body: PriceRequest, context: Context) -> PriceResponse:
    """Price an order at catalogue prices: subtotal, discounts, fees, tax and total."""
    bind_order_id(body.order_id)
    log.info("Calculating price... order_id=%s", body.order_id)
    catalogue_prices = await context.catalogue.prices(line.item_id for line in body.items)
    priced = price_request(body, catalogue_prices, context)
    log.info("Final Price=%s order_id=%s", priced.breakdown.total, body.order_id)
    return priced


@router.post("/calculate_price_batch", response_model=BatchResponse[PriceResponse])
async def calculate_price_batch(body: BatchRequest[PriceRequest], context: Context) -> Response:
    """`/calculate_price` for many orders at once: one outcome per order, in order."""
    catalogue_prices = await context.catalogue.prices(
        {line.item_id for order in body.items for line in order.items}
    )
    answers: list[PriceResponse | Exception] = []
    for order in body.items:
        try:
            answers.append(price_request(order, catalogue_prices, context))
        except PricingError as exc:
            answers.append(exc)
    log.info("Priced a batch of %d orders", len(answers))
    return batch_response(PriceResponse, answers, ERROR_STATUS)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the pricing service; its lifespan loads the rules and owns the database pool."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rules = load_rules(settings.pricing_rules_file)
        pool = await create_pool(settings)
        try:
            app.state.pricing = PricingContext(
                pool=pool,
                rules=rules,
                catalogue=CataloguePrices(pool),
                price_tolerance=settings.price_tolerance,
            )
            log.info("Pricing service ready (rules from %s)", settings.pricing_rules_file)
            yield
        finally:
            await pool.close()

    app = FastAPI(title="foodflow pricing service", lifespan=lifespan)
    install_metrics(app, "pricing_service")
    app.include_router(router)
    app.include_router(database_health_router(lambda request: request.app.state.pricing.pool))
    install_error_handlers(app, ERROR_STATUS)
    return app
