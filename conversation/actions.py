"""Server-side actions a step may run before its message; their result joins the context."""

from __future__ import annotations

# name → context keys the action sets. The flow linter uses this to check placeholders.
ACTION_PROVIDES: dict[str, frozenset[str]] = {
    "place_order": frozenset({"order_id"}),
    "lookup_order": frozenset({"order_status"}),
    "recent_orders": frozenset({"orders_summary"}),
}
# Set by the engine for every conversation, usable in any text.
GLOBAL_PLACEHOLDERS: frozenset[str] = frozenset({"profile_name"})
