"""``X-Hub-Signature-256``: HMAC-SHA256 of the raw request body, keyed by the app secret.

Always hash the bytes as received: Meta signs its own (unicode-escaped) serialisation, so
re-serialising parsed JSON would not match.
"""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "sha256="
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def sign(body: bytes, secret: str) -> str:
    """The header value Meta would send for ``body``: ``sha256=<64 lowercase hex>``."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """True only when ``header`` signs exactly ``body``; never raises on a junk header.

    The ``sha256=`` prefix must be exact; the hex digest may be in either case.
    """
    if not secret or not isinstance(header, str) or not header.startswith(PREFIX):
        return False  # an empty secret would make every forger's HMAC easy to compute
    given = header[len(PREFIX) :].strip()
    if not _HEX64.fullmatch(given):
        return False
    expected = sign(body, secret)[len(PREFIX) :]
    return hmac.compare_digest(given.lower().encode("ascii"), expected.encode("ascii"))
