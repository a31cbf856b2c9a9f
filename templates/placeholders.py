"""``{name}`` placeholders in flow texts: the one parser, shared by the linter and the engine.

Only bare identifiers are placeholders; ``{{`` and ``}}`` are literal braces. Substitution
is a single pass over the flow's own text, so a customer's answer that looks like a
placeholder or a format string (``{order_id}``, ``{0.__class__}``, ``%s``) is shown as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PlaceholderError(ValueError):
    pass


def placeholders(text: str) -> list[str]:
    """Names used in ``text``, in order; raises PlaceholderError on anything but ``{name}``."""
    names: list[str] = []
    for match in _TOKEN.finditer(text):
        inner = match.group(1)
        if inner is None:
            continue
        if not _IDENT.match(inner):
            raise PlaceholderError(f"invalid placeholder {{{inner}}}: only {{name}} is allowed")
        names.append(inner)
    return names


def render(text: str, values: Mapping[str, Any]) -> str:
    """Fill ``{name}`` from ``values`` (missing → empty); never re-reads substituted text."""

    def _sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        inner = match.group(1)
        if not _IDENT.match(inner):
            return token
        value = values.get(inner)
        return "" if value is None else str(value)

    return _TOKEN.sub(_sub, text)
