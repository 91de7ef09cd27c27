"""Stock arithmetic and the reservation state machine: pure, no I/O.

A reservation belongs to one order and moves RESERVED -> COMMITTED (the sale is final) or
RESERVED -> RELEASED (stock goes back). REJECTED records a reserve that could not be met, so
that repeating the request gives the same answer. Every transition is idempotent: asking for
the state a reservation is already in changes nothing.

An item its restaurant does not offer now (marked unavailable by the staff) counts as short
whatever its stock: an order for it is rejected like one for an item sold out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class InventoryError(Exception):
    """A request the inventory cannot carry out; the message is meant for the caller."""


class ReservationNotFound(InventoryError):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"no stock reservation for order {order_id}")


class ItemNotFound(InventoryError):
    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(f"no item {item_id} in the catalogue")


class ReservationConflict(InventoryError):
    """The reservation is in a state the requested transition cannot leave from."""


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class Availability:
    item_id: str
    requested: int
    in_stock: int
    known: bool
    offered: bool = True  # False: its restaurant marked it unavailable

    @property
    def available(self) -> bool:
        return self.known and self.offered and self.in_stock >= self.requested


@dataclass(frozen=True)
class Shelf:
    """What the catalogue holds of some items: the stock of each known one, and those of them
    their restaurant does not offer now."""

    stock: dict[str, int]
    unavailable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reservation:
    order_id: str
    status: ReservationStatus
    items: Mapping[str, int]
    unknown_items: tuple[str, ...] = ()
    short_items: tuple[str, ...] = ()

    @property
    def holds_stock(self) -> bool:
        return self.status is ReservationStatus.RESERVED

    def commit(self) -> Reservation:
        """RESERVED -> COMMITTED; COMMITTED stays; RELEASED or REJECTED cannot be committed."""
        if self.status is ReservationStatus.COMMITTED:
            return self
        if self.status is not ReservationStatus.RESERVED:
            raise ReservationConflict(
                f"reservation of order {self.order_id} is {self.status}, it cannot be committed"
            )
        return replace(self, status=ReservationStatus.COMMITTED)

    def cancel(self) -> Reservation:
        """RESERVED or COMMITTED -> RELEASED: a cancelled order gives its stock back, even
        once the sale was final. RELEASED and REJECTED stay (nothing to give back)."""
        if self.status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
            return self
        return replace(self, status=ReservationStatus.RELEASED)

    def release(self) -> Reservation:
        """RESERVED -> RELEASED; RELEASED and REJECTED stay; COMMITTED cannot be released.

        A REJECTED reservation never took stock, so releasing it is a harmless no-op.
        """
        if self.status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
            return self
        if self.status is ReservationStatus.COMMITTED:
            raise ReservationConflict(
                f"reservation of order {self.order_id} is COMMITTED, it cannot be released"
            )
        return replace(self, status=ReservationStatus.RELEASED)


@dataclass(frozen=True)
class StockRequest:
    """Requested quantity per item, lines of the same item added up, in first-seen order."""

    quantities: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_lines(cls, lines: Iterable[tuple[str, int]]) -> StockRequest:
        totals: dict[str, int] = {}
        for item_id, quantity in lines:
            if quantity < 1:
                raise InventoryError(f"quantity of {item_id} must be at least 1")
            totals[item_id] = totals.get(item_id, 0) + quantity
        return cls(totals)

    @property
    def lock_order(self) -> list[str]:
        """Item ids sorted: every transaction locks item rows in this same order, so two
        reserves never wait on each other in a cycle (no deadlock)."""
        return sorted(self.quantities)


def check_availability(
    request: StockRequest, stock: Mapping[str, int], unavailable: Collection[str] = frozenset()
) -> list[Availability]:
    """Availability of each requested item given the current `stock` (absent = unknown) and
    the items not offered now (`unavailable`)."""
    return [
        Availability(
            item_id=item_id,
            requested=quantity,
            in_stock=stock.get(item_id, 0),
            known=item_id in stock,
            offered=item_id not in unavailable,
        )
        for item_id, quantity in request.quantities.items()
    ]


def decide_reservation(
    order_id: str,
    request: StockRequest,
    stock: Mapping[str, int],
    unavailable: Collection[str] = frozenset(),
) -> Reservation:
    """RESERVED when every item is known, offered and in stock, else REJECTED naming the
    culprits (an item not offered now is short)."""
    availability = check_availability(request, stock, unavailable)
    unknown = tuple(a.item_id for a in availability if not a.known)
    short = tuple(a.item_id for a in availability if a.known and not a.available)
    status = ReservationStatus.REJECTED if unknown or short else ReservationStatus.RESERVED
    return Reservation(order_id, status, dict(request.quantities), unknown, short)
