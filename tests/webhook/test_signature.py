"""webhook.signature: Meta's X-Hub-Signature-256 over the raw bytes."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.signature import sign, verify

SECRET = "app-secret"
BODY = b'{"object":"whatsapp_business_account","entry":[{"text":"\\u00e4\\u00f6\\u00e5"}]}'


def test_sign_matches_a_plain_hmac() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET) == f"sha256={expected}"


def test_verify_accepts_the_signature_in_either_case() -> None:
    header = sign(BODY, SECRET)
    assert verify(BODY, header, SECRET)
    assert verify(BODY, "sha256=" + header[7:].upper(), SECRET)


def test_signature_covers_the_exact_bytes() -> None:
    # Meta signs its escaped serialisation; the same JSON written with raw UTF-8 differs.
    assert not verify(
        '{"object":"whatsapp_business_account","entry":[{"text":"äöå"}]}'.encode(), sign(BODY, SECRET), SECRET
    )
    assert not verify(BODY + b" ", sign(BODY, SECRET), SECRET)
    assert not verify(BODY, sign(BODY, "other-secret"), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "SHA256=" + "a" * 64,  # the prefix is strict
        "sha1=" + "a" * 40,
        "sha256=" + "g" * 64,
        "sha256=" + "a" * 63,
        "sha256=" + "a" * 65,
        "sha256=" + "é" * 64,
        "sha256=\x00",
        "a" * 10_000,
    ],
)
def test_junk_headers_are_refused_without_raising(header: str | None) -> None:
    assert verify(BODY, header, SECRET) is False


def test_an_empty_secret_verifies_nothing() -> None:
    assert not verify(BODY, sign(BODY, ""), "")


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=512), header=st.text(max_size=80) | st.none())
def test_verify_never_raises(body: bytes, header: str | None) -> None:
    assert verify(body, header, SECRET) in (True, False)
    assert verify(body, sign(body, SECRET), SECRET)
