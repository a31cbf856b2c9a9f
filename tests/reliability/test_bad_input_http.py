"""The receiver over real HTTP (gunicorn) under fuzzed requests, and the workers after them.

Random bodies (bytes, any JSON, WhatsApp-shaped junk), random headers, sizes up to and
over the limit, correctly signed or forged. The receiver never answers a 5xx (503 only
while the broker is down, and then nothing is lost), and no forged body is ever
accepted. Correctly signed junk reaches the workers, which must neither crash on it nor
stall: a customer served right after gets every reply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.audit import Tally
from tests.reliability.customers import coffee
from tests.reliability.harness import ChaosStack, Scenario, assert_clean, run_scenario
from tests.support.webhooks import APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN, contact, message, webhook
from webhook.signature import sign

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
LIMIT = 3 * 1024 * 1024
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORGERIES = ("random", "foreign_secret", "other_body", "sha1", "bare_hex", "empty", "junk")


@pytest.fixture(scope="module")
def http(chaos: ChaosStack) -> Iterator[requests.Session]:
    chaos.use_faults(None)
    with requests.Session() as session:
        yield session


def post(http: requests.Session, chaos: ChaosStack, body: Any, headers: dict[str, str]) -> requests.Response:
    return http.post(f"{chaos.base_url}/webhook", data=body, headers=headers, timeout=30)


# --- strategies ---------------------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
any_json = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
phones = st.from_regex(r"\+?1555[0-9]{7}", fullmatch=True)
bsuids = st.from_regex(r"US\.[0-9]{19}", fullmatch=True)
items = st.fixed_dictionaries(
    {
        "from": st.one_of(phones, bsuids, any_json),
        "id": st.one_of(st.from_regex(r"wamid\.FUZZ[A-Za-z0-9]{12}", fullmatch=True), any_json),
        "timestamp": st.one_of(st.just(str(int(time.time()))), any_json),
        "type": st.one_of(
            st.sampled_from(["text", "interactive", "image", "reaction", "button", "unsupported"]), any_json
        ),
        "text": st.one_of(st.fixed_dictionaries({"body": st.text(max_size=200)}), any_json),
        "interactive": st.one_of(
            st.fixed_dictionaries(
                {"type": st.just("button_reply"), "button_reply": st.fixed_dictionaries({"id": st.text(max_size=20)})}
            ),
            any_json,
        ),
    },
    optional={"context": any_json, "reaction": any_json, "extra": any_json},
)
values = st.fixed_dictionaries(
    {
        "messaging_product": st.just("whatsapp"),
        "metadata": st.one_of(st.just({"phone_number_id": PHONE_NUMBER_ID}), any_json),
        "messages": st.one_of(st.lists(items, max_size=4), any_json),
        "contacts": st.one_of(
            st.lists(st.fixed_dictionaries({"wa_id": phones, "user_id": bsuids}), max_size=2), any_json
        ),
        "statuses": st.one_of(st.lists(any_json, max_size=2), st.just([])),
    }
)
waba = st.fixed_dictionaries(
    {
        "object": st.just("whatsapp_business_account"),
        "entry": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": st.text(max_size=5),
                        "changes": st.one_of(
                            st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "field": st.sampled_from(["messages", "statuses", "account_update"]),
                                        "value": values,
                                    }
                                ),
                                max_size=3,
                            ),
                            any_json,
                        ),
                    }
                ),
                max_size=3,
            ),
            any_json,
        ),
    }
)
bodies = st.one_of(
    st.binary(max_size=2048),
    any_json.map(lambda d: json.dumps(d).encode()),
    waba.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    waba.map(lambda d: json.dumps(d).encode()),
)
# Any latin-1 header value an HTTP client can send (requests refuses leading whitespace and CR/LF).
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80).filter(
    lambda v: re.fullmatch(r"\S[^\r\n]*|", v) is not None
)
extra_headers = st.dictionaries(
    st.sampled_from(["Content-Encoding", "X-Forwarded-For", "User-Agent", "Accept", "X-Hub-Signature", "Expect"]),
    header_text,
    max_size=3,
)


def forge(kind: str, body: bytes) -> str | None:
    real = sign(body, APP_SECRET)
    if kind == "random":
        return "sha256=" + hashlib.sha256(body + b"salt").hexdigest()
    if kind == "foreign_secret":
        return sign(body, APP_SECRET + "x")
    if kind == "other_body":
        return sign(body + b" ", APP_SECRET)
    if kind == "sha1":
        return "sha1=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
    if kind == "bare_hex":
        return real.removeprefix("sha256=")  # the right digest without its prefix is still refused
    if kind == "empty":
        return None
    return "sha256=" + "g" * 64


# --- POST /webhook ------------------------------------------------------------------------------


@FUZZ
@given(
    body=bodies,
    signed=st.booleans(),
    forgery=st.sampled_from(FORGERIES),
    content_type=st.one_of(st.just("application/json"), header_text),
    headers=extra_headers,
)
def test_fuzzed_posts_never_5xx_and_forgeries_never_pass(
    chaos: ChaosStack,
    http: requests.Session,
    body: bytes,
    signed: bool,
    forgery: str,
    content_type: str,
    headers: dict[str, str],
) -> None:
    sent = {**headers, "Content-Type": content_type}
    signature = sign(body, APP_SECRET) if signed else forge(forgery, body)
    if signature is not None:
        sent["X-Hub-Signature-256"] = signature
    sent.pop("Expect", None)  # requests cannot answer a 100-continue dance
    status = post(http, chaos, body, sent).status_code
    assert status < 500, f"{status} for {body[:200]!r}"
    if signed:
        assert status in (200, 400)
    else:
        assert status in (401, 403), f"forged ({forgery}) body answered {status}"


@pytest.mark.parametrize(
    ("size", "chunked", "expected"),
    [
        (LIMIT, False, 200),
        (LIMIT + 1, False, 413),
        (5 * 1024 * 1024, False, 413),
        (LIMIT - 10, True, 200),
        (LIMIT + 1, True, 413),
    ],
)
def test_sizes_up_to_and_over_the_limit(
    chaos: ChaosStack, http: requests.Session, size: int, chunked: bool, expected: int
) -> None:
    doc = json.dumps(webhook([message("15550009999", "hi")], [contact("15550009999")])).encode()
    body = doc[:-1] + b" " * (size - len(doc)) + b"}"
    assert len(body) == size
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
    data: Any = iter([body[i : i + 65536] for i in range(0, size, 65536)]) if chunked else body
    assert post(http, chaos, data, headers).status_code == expected
    # An oversized body is refused whatever its signature says.
    if expected == 413:
        forged = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        assert post(http, chaos, body, forged).status_code == 413


@settings(max_examples=60, deadline=None)
@given(
    mode=st.one_of(st.just("subscribe"), header_text),
    token=st.one_of(st.just(VERIFY_TOKEN), header_text),
    challenge=st.one_of(st.none(), header_text),
)
def test_fuzzed_handshakes(
    chaos: ChaosStack, http: requests.Session, mode: str, token: str, challenge: str | None
) -> None:
    params = {"hub.mode": mode, "hub.verify_token": token}
    if challenge is not None:
        params["hub.challenge"] = challenge
    r = http.get(f"{chaos.base_url}/webhook", params=params, timeout=10)
    assert r.status_code < 500
    if r.status_code == 200:
        assert mode == "subscribe" and token == VERIFY_TOKEN and r.text == challenge


def test_with_the_broker_down_only_503_and_nothing_acknowledged_is_lost(
    chaos: ChaosStack, http: requests.Session
) -> None:
    user = "1555" + str(int(time.time() * 1000))[-7:]
    payload = json.dumps(webhook([message(user, "hi")], [contact(user)])).encode()
    signed = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(payload, APP_SECRET)}
    chaos.kill_redis()
    try:
        assert post(http, chaos, payload, signed).status_code == 503
        assert (
            post(http, chaos, payload, {**signed, "X-Hub-Signature-256": forge("random", payload) or ""}).status_code
            == 403
        )
        assert (
            post(
                http, chaos, b"{not json", {**signed, "X-Hub-Signature-256": sign(b"{not json", APP_SECRET)}
            ).status_code
            == 400
        )
    finally:
        chaos.start_redis()
    assert post(http, chaos, payload, signed).status_code == 200  # Meta's retry
    chaos.stub.wait_for(lambda rs: any(r.recipient == f"+{user}" and r.kind == "message" for r in rs), 60)


def test_workers_are_not_wedged_by_what_came_before(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    """Runs after the fuzz: a handful of customers through full flows, every reply once, in order."""
    marks = chaos.worker_log_marks()
    tally, meta = run_scenario(
        chaos, Scenario("bad input (after fuzz)", [coffee() for _ in range(4)], faults="fuzzed HTTP before")
    )
    record(tally)
    assert_clean(tally, meta)
    log = chaos.worker_logs_since(marks)
    assert "raised unexpected" not in log and "WorkerLostError" not in log
