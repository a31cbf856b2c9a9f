"""Server-side actions a step may run before its message; their result joins the context.

Python actions are functions registered by name; they run inside the caller's
transaction, so an order is only kept if the conversation step that placed it commits.
HTTP actions POST the context as JSON and merge the JSON object they answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation.models import Order
from conversation.state import ActionCall, ActionFailed
from conversation.texts.catalogue import Catalogue, Catalogues, shipped_catalogues
from templates.schema import HttpAction

log = logging.getLogger(__name__)

PythonAction = Callable[[Session, ActionCall, Catalogue], Mapping[str, Any]]

# name → context keys the action sets. The flow linter uses this to check placeholders.
ACTION_PROVIDES: dict[str, frozenset[str]] = {
    "place_order": frozenset({"order_id"}),
    "lookup_order": frozenset({"order_status"}),
    "recent_orders": frozenset({"orders_summary"}),
}
# Set by the engine for every conversation, usable in any text.
GLOBAL_PLACEHOLDERS: frozenset[str] = frozenset({"profile_name"})


def place_order(session: Session, call: ActionCall, _texts: Catalogue) -> Mapping[str, Any]:
    items = {k: v for k, v in call.context.items() if not k.startswith("_")}
    order = Order(user_key=call.user_key, items=items)
    session.add(order)
    session.flush()  # assigns the id, which is the order number
    return {"order_id": order.number}


def lookup_order(session: Session, call: ActionCall, texts: Catalogue) -> Mapping[str, Any]:
    raw = str(call.context.get("order_number", ""))
    digits = re.sub(r"\D", "", raw)
    order = session.get(Order, int(digits)) if digits and len(digits) <= 18 else None
    # Customers may only see their own orders.
    if order is None or order.user_key != call.user_key:
        return {"order_status": texts.text("actions.order_not_found")}
    placed = order.created_at.astimezone(UTC)
    status = texts.text("actions.order_received", day=placed.date(), time=placed.strftime("%H:%M"))
    return {"order_status": status}


def recent_orders(session: Session, call: ActionCall, texts: Catalogue) -> Mapping[str, Any]:
    rows = session.scalars(
        select(Order).where(Order.user_key == call.user_key).order_by(Order.id.desc()).limit(5)
    ).all()
    if not rows:
        return {"orders_summary": texts.text("actions.no_orders")}
    lines = [
        f"{o.number}: {o.items.get('quantity', '?')} x {o.items.get('product_title', o.items.get('product', '?'))}"
        for o in rows
    ]
    return {"orders_summary": "\n".join(lines)}


REGISTRY: dict[str, PythonAction] = {
    "place_order": place_order,
    "lookup_order": lookup_order,
    "recent_orders": recent_orders,
}
assert set(REGISTRY) == set(ACTION_PROVIDES), "every registered action declares what it provides"


class Actions:
    """The ``ActionRunner`` the engine gets: Python actions on ``session``, HTTP actions via ``http``."""

    def __init__(
        self, session: Session, http: requests.Session | None = None, catalogues: Catalogues | None = None
    ) -> None:
        self.session = session
        self.http = http or requests.Session()
        self.catalogues = catalogues or shipped_catalogues()  # what the actions say, per language

    def run(self, action: str | HttpAction, call: ActionCall) -> Mapping[str, Any]:
        if isinstance(action, HttpAction):
            return self._http(action, call)
        func = REGISTRY.get(action)
        if func is None:
            raise ActionFailed(f"no action named {action!r} is registered")
        # A savepoint keeps a failing action's partial writes out of the step's transaction.
        with self.session.begin_nested():
            return func(self.session, call, self.catalogues.get(call.language))

    def _http(self, action: HttpAction, call: ActionCall) -> Mapping[str, Any]:
        payload = {"template": call.template, "step": call.step, "user": call.user_key, "context": dict(call.context)}
        try:
            response = self.http.post(action.http, json=payload, timeout=action.timeout)
        except requests.RequestException as exc:
            raise ActionFailed(f"HTTP action failed: {exc.__class__.__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise ActionFailed(f"HTTP action answered {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ActionFailed("HTTP action answered something that is not JSON") from exc
        if not isinstance(data, dict):
            raise ActionFailed("HTTP action must answer a JSON object")
        missing = [key for key in action.provides if key not in data]
        if missing:
            raise ActionFailed(f"HTTP action did not provide {', '.join(missing)}")
        return data
