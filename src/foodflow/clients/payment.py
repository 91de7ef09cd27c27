"""The order manager's side of the payment service: `PaymentProvider` over HTTP."""

from __future__ import annotations

from foodflow.contracts.payment import AuthoriseRequest, PaymentRequest, PaymentResult
from foodflow.platform.config import Settings
from foodflow.platform.http.client import ServiceClient
from foodflow.platform.http.service_auth import ServiceTokens


class PaymentClient(ServiceClient):
    """Every call carries the caller's idempotency key, so retries are safe. Authorise and
    capture, once per order, travel through the batch endpoints; void and refund are rare."""

    def __init__(self, settings: Settings, tokens: ServiceTokens) -> None:
        super().__init__("payment", settings.payment_url, settings, tokens, "payment_service")
        self._authorise = self.batched(
            "/authorise_batch",
            AuthoriseRequest,
            PaymentResult,
            in_flight=settings.payment_batches_in_flight,
        )
        self._capture = self.batched("/capture_batch", PaymentRequest, PaymentResult)

    async def authorise(self, request: AuthoriseRequest) -> PaymentResult:
        return await self._authorise(request)

    async def capture(self, request: PaymentRequest) -> PaymentResult:
        return await self._capture(request)

    async def void(self, request: PaymentRequest) -> PaymentResult:
        return await self.post("/void", request, PaymentResult)

    async def refund(self, request: PaymentRequest) -> PaymentResult:
        return await self.post("/refund", request, PaymentResult)
