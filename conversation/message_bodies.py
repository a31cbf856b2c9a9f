"""The per-type objects of a webhook message, read into plain values; pure and checked.

``payload.py`` walks the envelope and calls these for one ``messages[]`` item. Shapes are
those of the Cloud API messages webhook: ``order``, ``interactive.nfm_reply``,
``interactive.call_permission_reply``, ``edit``, ``revoke`` and ``system``. Whatever a
checker here refuses raises ``Unreadable``, which skips that one item with the reason.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from conversation.events import Cart, CartItem, IdentityChange

# Shapes are checked because these strings become database keys (column widths in
# conversation/models.py) and recipients of replies; junk must stop here, per item.
BSUID = re.compile(r"[A-Za-z]{2}\.[A-Za-z0-9.]{1,150}")  # "US.1349…", "US.ENT.…"
PHONE = re.compile(r"\+?[0-9]{5,20}")
WAMID = re.compile(r"[\x21-\x7e]{1,256}")  # wamids: printable ASCII, no spaces
PRODUCT_ID = re.compile(r"[\x20-\x7e]{1,100}")
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_CART_ITEMS = 100  # Meta's own cart limit is far below; a bound keeps a row small
MAX_QUANTITY = 10_000


class Unreadable(ValueError):
    """An item that cannot be read; becomes a SkippedItem with this message."""


def wamid(value: Any) -> str | None:
    return value if isinstance(value, str) and WAMID.fullmatch(value) else None


def clean_text(value: Any) -> str | None:
    """Display text made storable: no NULs (Postgres refuses them), no lone surrogates."""
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def phone(value: Any) -> str | None:
    return value.lstrip("+") if isinstance(value, str) and PHONE.fullmatch(value) else None


def bsuid(value: Any) -> str | None:
    return value if isinstance(value, str) and BSUID.fullmatch(value) else None


def _decimal(value: Any) -> str | None:
    """A price as exact decimal text; a JSON number is read through its text, never as a float sum."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Unreadable("order item price is not a number") from None
    if not number.is_finite() or number < 0 or number > Decimal("1e12"):
        raise Unreadable("order item price out of range")
    return str(number)


def _quantity(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        quantity = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        quantity = int(value)
    else:
        raise Unreadable("order item quantity is not a whole number")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise Unreadable("order item quantity out of range")
    return quantity


def read_order(body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("product_items")
    if not isinstance(items, list) or not items:
        raise Unreadable("order without product_items")
    if len(items) > MAX_CART_ITEMS:
        raise Unreadable("order with too many product_items")
    cart: list[CartItem] = []
    for item in items:
        if not isinstance(item, dict):
            raise Unreadable("order item is not an object")
        product = item.get("product_retailer_id")
        if not isinstance(product, str) or not PRODUCT_ID.fullmatch(product):
            raise Unreadable("order item without a product_retailer_id")
        currency = item.get("currency")
        currency = currency if isinstance(currency, str) and CURRENCY.fullmatch(currency) else None
        cart.append(CartItem(product, _quantity(item.get("quantity")), _decimal(item.get("item_price")), currency))
    catalog = body.get("catalog_id")
    catalog = catalog if isinstance(catalog, str) and PRODUCT_ID.fullmatch(catalog) else None
    note = clean_text(body.get("text"))
    return {"cart": Cart(catalog, tuple(cart), note), "text": note}


def read_flow_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """``nfm_reply.response_json`` is a JSON object sent as a string; its fields are the answers."""
    raw = reply.get("response_json")
    try:
        answers = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        raise Unreadable("nfm_reply response_json is not JSON") from None
    if not isinstance(answers, dict):
        raise Unreadable("nfm_reply without a response_json object")
    return {"answers": answers, "text": clean_text(reply.get("body"))}


def read_call_permission(reply: dict[str, Any]) -> dict[str, Any]:
    response = reply.get("response")
    return {"text": response if response in ("accept", "reject") else None}


def read_revoke(body: dict[str, Any]) -> dict[str, Any]:
    target = wamid(body.get("original_message_id"))
    if target is None:
        raise Unreadable("revoke without original_message_id")
    return {"target_wamid": target}


def read_edit(body: dict[str, Any]) -> dict[str, Any]:
    """The edit names the original; its ``message`` is the new content (a text, or a caption)."""
    target = wamid(body.get("original_message_id"))
    if target is None:
        raise Unreadable("edit without original_message_id")
    message = body.get("message")
    message = message if isinstance(message, dict) else {}
    inner_type = message.get("type")
    inner = message.get(inner_type) if isinstance(inner_type, str) else None
    text = None
    if isinstance(inner, dict):
        text = clean_text(inner.get("body")) if inner_type == "text" else clean_text(inner.get("caption"))
    return {"target_wamid": target, "text": text}


def read_identity(system: dict[str, Any], sender: Any) -> dict[str, Any]:
    """``user_changed_number`` carries the new phone (``wa_id``); both types may carry the new
    BSUID (``user_id``) and the previous one (``previous_user_id``). The sender is who they were."""
    new_phone = phone(system.get("wa_id")) or phone(system.get("new_wa_id"))
    new_user_id = bsuid(system.get("user_id"))
    change = IdentityChange(
        previous_phone=phone(sender),
        previous_user_id=bsuid(system.get("previous_user_id")) or bsuid(sender),
        new_phone=new_phone,
        new_user_id=new_user_id,
    )
    if system.get("type") == "user_changed_number" and new_phone is None:
        raise Unreadable("user_changed_number without the new wa_id")
    if system.get("type") == "user_changed_user_id" and new_user_id is None:
        raise Unreadable("user_changed_user_id without the new user_id")
    return {"identity": change, "text": clean_text(system.get("body"))}
