"""Where a service keeps what it runs on: one runtime object on `app.state.runtime`.

Each service's composition root builds its runtime (pool, clients, consumers, use-case ports)
in the lifespan and stores it there; routes reach it through one FastAPI dependency:

    RUNTIME = RuntimeSlot(InventoryRuntime)
    Runtime = Annotated[InventoryRuntime, Depends(RUNTIME.dependency)]
"""

from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import Request

R = TypeVar("R")


class RuntimeSlot(Generic[R]):
    """Typed access to `app.state.runtime` for a runtime of class `kind`."""

    def __init__(self, kind: type[R]) -> None:
        self.kind = kind

    def of(self, request: Request) -> R:
        runtime = getattr(request.app.state, "runtime", None)
        if not isinstance(runtime, self.kind):
            raise RuntimeError(f"no {self.kind.__name__} on app.state.runtime (lifespan not run?)")
        return runtime

    async def dependency(self, request: Request) -> R:  # async: no thread-pool hop
        return self.of(request)
