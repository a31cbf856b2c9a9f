"""A catalog cart as the context of the flow it starts (the keys of ``ORDER_CONTEXT``).

Prices stay exact decimals; the total is given only when every item has a price in one
currency, since a sum across currencies, or with a missing price, would be wrong.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from conversation.events import Cart
from templates.schema import ORDER_CONTEXT


def order_context(cart: Cart) -> dict[str, Any]:
    items = [
        {"product_id": i.product_id, "quantity": i.quantity, "price": i.price, "currency": i.currency}
        for i in cart.items
    ]
    currencies = {i.currency for i in cart.items}
    priced = all(i.price is not None for i in cart.items) and len(currencies) == 1 and None not in currencies
    total = sum((Decimal(i.price) * i.quantity for i in cart.items if i.price is not None), Decimal(0))
    currency = next(iter(currencies)) if priced else None
    context = {
        "cart_items": items,
        "cart_summary": ", ".join(f"{i.quantity} x {i.product_id}" for i in cart.items),
        "cart_total": f"{total:.2f} {currency}" if priced else "",
        "cart_currency": currency or "",
        "cart_note": cart.note or "",
        "catalog_id": cart.catalog_id or "",
    }
    assert set(context) == ORDER_CONTEXT
    return context
