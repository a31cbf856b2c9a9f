"""``X-Hub-Signature-256``: HMAC-SHA256 of the raw request body, keyed by the app secret."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """True only for the exact bytes Meta signed; never raises on a junk header."""
    if not header or not isinstance(header, str) or not header.startswith(PREFIX):
        return False
    given = header[len(PREFIX) :].strip().lower()
    if len(given) != 64:
        return False
    expected = sign(body, secret)[len(PREFIX) :]
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode())
