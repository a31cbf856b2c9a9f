"""What Postgres JSONB can store: a webhook payload made safe for the ``payload`` column."""

from __future__ import annotations

import math
from typing import Any


def jsonb_safe(value: Any) -> Any:
    """Postgres JSONB refuses NUL characters, lone surrogates and NaN; a payload may still hold them."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {jsonb_safe(k): jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonb_safe(v) for v in value]
    return value
