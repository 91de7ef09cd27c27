"""The pricing service's HTTP API: one order's price, through the batch endpoint."""

from __future__ import annotations

from uuid import UUID

from foodflow.contracts.orders import ValidatedOrder
from foodflow.contracts.pricing import PriceLineIn, PriceRequest, PriceResponse
from foodflow.platform.config import Settings
from foodflow.platform.http.client import ServiceClient
from foodflow.platform.http.service_auth import ServiceTokens


class PricingClient(ServiceClient):
    def __init__(self, settings: Settings, tokens: ServiceTokens) -> None:
        super().__init__("pricing", settings.pricing_url, settings, tokens, "pricing_service")
        self._price = self.batched("/calculate_price_batch", PriceRequest, PriceResponse)

    async def calculate_price(self, order_id: UUID, order: ValidatedOrder) -> PriceResponse:
        request = PriceRequest(
            order_id=str(order_id),
            promo_code=order.promo_code,
            items=[
                PriceLineIn(item_id=i.item_id, quantity=i.quantity, price=i.price)
                for i in order.items
            ],
        )
        return await self._price(request)
