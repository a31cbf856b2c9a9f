"""Graph API client: send WhatsApp messages and read receipts, classify every failure.

No Celery and no database here: the sender decides what a :class:`GraphError`'s
``disposition`` means for an outbox row. Classification follows the Cloud API error
codes, never the human-readable title (Meta rewords titles; codes are the documented
contract), and falls back on the HTTP status only when the answer carries no code.

One :class:`GraphClient` is shared by every thread of a process: it holds one
``requests.Session`` whose state is fixed at construction (cookies refused, the token
sent by a per-request auth hook), so concurrent ``send`` calls only share urllib3's
thread-safe connection pool.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, Literal

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from conversation.logs import mask_identity

if TYPE_CHECKING:
    from settings import Settings

log = logging.getLogger(__name__)

Disposition = Literal["retry", "pair_limit", "auth", "permanent", "unknown_outcome"]

# Meta's documented error codes, by what retrying them can achieve: throttling and
# outages pass, a bad request or a closed 24 h window never will. Anything not listed is
# judged by its HTTP status (see classify).
RETRY_CODES = frozenset({130429, 131000, 1, 2, 4, 80007, 131016, 133004, 131057})
PAIR_LIMIT_CODES = frozenset({131056})
AUTH_CODES = frozenset({190, 0})
PERMANENT_CODES = frozenset(
    {131047, 131026, 131051, 100, 131008, 131009, 130403, 131021, 131048, 131049, 131050}
    | {368, 131031, 130497, 131042, 131045, 133010, 3, 10, 131005}
    | set(range(132000, 132017))
    | set(range(200, 300))
)
# 131057: the business number is in maintenance mode, which Meta says lasts about a minute.
MAINTENANCE_CODE = 131057
MAINTENANCE_SECONDS = 60.0

RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 300.0
# Pair rate limit (one business number to one customer): Meta asks for a wait of 4**X
# seconds after the X-th hit. Capped like other retries: 5 min
# is already more than the ~2 min a burst of 20 costs, longer would only strand the user.
PAIR_LIMIT_CAP_SECONDS = 300.0

_LONG_DIGITS = re.compile(r"\+?\d{7,}")


def classify(code: int | None, http_status: int | None) -> Disposition:
    """The disposition of a Graph answer: by error code, else by HTTP status."""
    if code is not None:
        if code in RETRY_CODES:
            return "retry"
        if code in PAIR_LIMIT_CODES:
            return "pair_limit"
        if code in AUTH_CODES:
            return "auth"
        if code in PERMANENT_CODES:
            return "permanent"
    if http_status is None:
        return "unknown_outcome"
    if http_status == 429 or http_status >= 500:
        return "retry"
    # Any other answer carrying no usable code (4xx, odd 2xx/3xx): resending it unchanged
    # cannot help. A gateway's bare 401 lands here too; only Graph's 190/0 mean "auth".
    return "permanent"


class GraphError(Exception):
    """A send or read receipt that Graph did not accept, with what to do about it.

    ``disposition``: ``retry`` (transient, back off), ``pair_limit`` (back off for this
    user only), ``auth`` (token broken: alert, do not burn retries), ``permanent`` (this
    message will never go), ``unknown_outcome`` (sent but unanswered: Graph may have
    accepted it). Texts are scrubbed: no token, recipients masked as in logs (``conversation.logs.mask_identity``).
    """

    def __init__(
        self,
        disposition: Disposition,
        code: int | None = None,
        http_status: int | None = None,
        title: str = "",
        details: str = "",
        recipient: str = "?",
        fbtrace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.disposition: Disposition = disposition
        self.code = code
        self.http_status = http_status
        self.title = title
        self.details = details
        self.recipient = recipient
        self.fbtrace_id = fbtrace_id
        # Seconds the server asked us to wait (Retry-After, or maintenance mode).
        self.retry_after = retry_after
        super().__init__(self.describe())

    def describe(self) -> str:
        code = f"(#{self.code}) " if self.code is not None else ""
        status = f" [HTTP {self.http_status}]" if self.http_status is not None else ""
        details = f": {self.details}" if self.details else ""
        return f"{self.disposition}: {code}{self.title}{details}{status} to {self.recipient}"

    def __str__(self) -> str:
        # From attributes, so a pickled-and-restored error still renders the same.
        return self.describe()


@dataclass(frozen=True)
class SendResult:
    """Graph accepted the message (accepted, not delivered: that comes by webhook)."""

    wamid: str
    response: dict[str, Any] = field(repr=False)


def build_body(to_phone: str | None, to_user_id: str | None, content: Mapping[str, Any]) -> dict[str, Any]:
    """The exact JSON body of a send: ``to`` the phone when known, else ``recipient``.

    ``content`` is the WhatsApp message object (``{"type": "text", "text": {...}}``); it
    may not carry its own addressing. Raises ValueError on unusable input.
    """
    clash = {"messaging_product", "recipient_type", "to", "recipient"} & content.keys()
    if clash:
        raise ValueError(f"content must not set {sorted(clash)}: the client addresses the message")
    if "type" not in content:
        raise ValueError("content needs a 'type'")
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if to_phone:
        digits = re.sub(r"\D", "", to_phone)
        if not digits:
            raise ValueError("to_phone has no digits")
        # With a leading + Graph never prepends the business number's country code.
        body["to"] = "+" + digits
    elif to_user_id:
        body["recipient"] = to_user_id
    else:
        raise ValueError("a send needs to_phone or to_user_id")
    body.update(content)
    return body


def build_read_body(message_id: str) -> dict[str, Any]:
    """The JSON body that marks an inbound message (and earlier ones) as read."""
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}


def retry_delay(disposition: str, attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0).

    ``retry`` / ``unknown_outcome``: exponential backoff with full jitter, uniform in
    ``[0, min(300, 1 * 2**attempt))``, so many senders hit by one outage spread out.
    ``pair_limit``: ``4**attempt`` seconds as Meta prescribes, capped at 300 s; no
    jitter, only one user's messages wait. ``auth`` / ``permanent`` are never retried
    (ValueError). A server's ``GraphError.retry_after`` is a floor the caller applies.
    """
    if attempt < 0:
        raise ValueError("attempt counts from 0")
    exponent = min(attempt, 32)  # beyond this every delay is at its cap anyway
    if disposition == "pair_limit":
        return min(4.0**exponent, PAIR_LIMIT_CAP_SECONDS)
    if disposition in ("retry", "unknown_outcome"):
        return rng() * min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2.0**exponent)
    raise ValueError(f"{disposition} errors are not retried")


class _Bearer(AuthBase):
    """Per-request auth: keeps the token off the shared session and out of reprs."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "_Bearer(***)"


class GraphClient:
    """Sends to ``{api_url}/{phone_number_id}/messages``; safe to share between threads."""

    def __init__(
        self,
        api_url: str,
        access_token: str,
        connect_timeout: float,
        read_timeout: float,
        *,
        pool_maxsize: int = 128,
    ) -> None:
        if not access_token:
            raise ValueError("an access token is required")
        self.api_url = api_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._token = access_token
        self.auth: AuthBase = _Bearer(access_token)  # what each request is signed with; its repr hides the token
        session = requests.Session()
        # Graph sets no cookies we need; refusing them keeps the session immutable.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        session.headers.update({"User-Agent": "parley", "Accept": "application/json"})
        # pool_maxsize caps the keep-alive connections kept, and must be at least the
        # sender's threads (SENDER_THREADS): past it urllib3 discards the connection of
        # every extra concurrent send, and each later send pays a new TLS handshake.
        # No urllib3 retries: a blind resend of a POST could deliver a message twice.
        # The caller retries with knowledge of the outbox row.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=Retry(total=0, read=False))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Proxy and CA-bundle variables (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, ...) are
        # read once, here: with trust_env on, requests re-reads the whole environment on
        # every call, ~0.6 ms of CPU per send.
        found = session.merge_environment_settings(self.api_url, {}, None, None, None)
        session.proxies.update(found["proxies"])
        session.verify = found["verify"]
        session.trust_env = False
        self._session = session

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphClient:
        return cls(
            settings.api_url,
            settings.access_token,
            settings.graph_connect_timeout,
            settings.graph_read_timeout,
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self, phone_number_id: str, to_phone: str | None, to_user_id: str | None, content: Mapping[str, Any]
    ) -> SendResult:
        """Send one message; return its wamid or raise :class:`GraphError`.

        A message that cannot be addressed (no phone, no BSUID, bad content) is a
        ``permanent`` GraphError, so the caller has one failure path to handle.
        """
        who = mask_identity(to_phone or to_user_id)
        try:
            body = build_body(to_phone, to_user_id, content)
        except ValueError as exc:
            raise self._logged(GraphError("permanent", title="message not sendable", details=str(exc))) from exc
        secrets = [v for v in (to_phone and re.sub(r"\D", "", to_phone), to_user_id) if v]
        status, data = self._post(phone_number_id, body, who, secrets)
        messages = data.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            # Without an id no status webhook can ever be matched to this row: treat the
            # answer as a transient server fault and send again.
            error = GraphError("retry", None, status, "answer without messages[0].id", "", who)
            raise self._logged(error)
        log.debug("graph accepted %s to %s", wamid, who)
        return SendResult(wamid=wamid, response=data)

    def mark_read(self, phone_number_id: str, message_id: str) -> None:
        """Mark an inbound message read (Graph also marks the earlier ones)."""
        status, data = self._post(phone_number_id, build_read_body(message_id), "read receipt", [])
        if data.get("success") is not True:
            raise self._logged(GraphError("retry", None, status, "answer without success", ""))

    def _post(
        self, phone_number_id: str, body: dict[str, Any], who: str, secrets: list[str]
    ) -> tuple[int, dict[str, Any]]:
        url = f"{self.api_url}/{phone_number_id}/messages"
        try:
            # No redirects: requests would replay a redirected POST as a GET.
            resp = self._session.post(url, json=body, auth=self.auth, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise self._logged(self._transport_error(exc, who, secrets)) from exc
        try:
            data: Any = resp.json()
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) or not 200 <= resp.status_code < 300:
            raise self._logged(self._api_error(resp, error, who, secrets))
        if not isinstance(data, dict):
            # A 2xx that is not Graph's JSON (a proxy page): no wamid, so like a missing id.
            not_json = GraphError("retry", None, resp.status_code, "answer is not JSON", "", who)
            raise self._logged(not_json)
        return resp.status_code, data

    def _transport_error(self, exc: requests.RequestException, who: str, secrets: list[str]) -> GraphError:
        text = self._scrub(f"{exc.__class__.__name__}: {exc}", secrets)
        if isinstance(exc, requests.ConnectTimeout):
            return GraphError("retry", title="connect timeout", details=text, recipient=who)
        if isinstance(exc, requests.ReadTimeout):
            return GraphError("unknown_outcome", title="no answer in time", details=text, recipient=who)
        if isinstance(exc, requests.ConnectionError):
            # urllib3 wraps failures to connect (refused, DNS, TLS handshake) in
            # MaxRetryError: the request never left. Anything else broke after sending.
            if exc.args and isinstance(exc.args[0], MaxRetryError):
                return GraphError("retry", title="could not connect", details=text, recipient=who)
            return GraphError("unknown_outcome", title="connection dropped", details=text, recipient=who)
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            return GraphError("unknown_outcome", title="answer cut off", details=text, recipient=who)
        # Invalid URL and the like: configuration, every later send fails the same way.
        return GraphError("permanent", title="request could not be made", details=text, recipient=who)

    def _api_error(
        self, resp: requests.Response, error: dict[str, Any] | None, who: str, secrets: list[str]
    ) -> GraphError:
        code: int | None = None
        title = f"HTTP {resp.status_code}"
        details = ""
        fbtrace_id = None
        if error is not None:
            raw = error.get("code")
            if isinstance(raw, str) and raw.isdigit():
                raw = int(raw)
            code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
            # Graph's message is "(#code) title"; the code is shown on its own.
            title = re.sub(r"^\(#\d+\)\s*", "", str(error.get("message") or "")) or title
            data = error.get("error_data")
            details = str(data.get("details") or "") if isinstance(data, dict) else ""
            fbtrace_id = error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None
        else:
            details = resp.text[:200]
        retry_after = _seconds(resp.headers.get("Retry-After"))
        if code == MAINTENANCE_CODE:
            retry_after = max(retry_after or 0.0, MAINTENANCE_SECONDS)
        return GraphError(
            classify(code, resp.status_code),
            code,
            resp.status_code,
            self._scrub(title[:300], secrets),
            self._scrub(details[:500], secrets),
            who,
            fbtrace_id,
            retry_after,
        )

    def _scrub(self, text: str, secrets: list[str]) -> str:
        """Drop the token, mask recipients and anything that looks like a phone number."""
        text = _LONG_DIGITS.sub(lambda m: mask_identity(m.group()), text.replace(self._token, "***"))
        for secret in secrets:
            text = text.replace(secret, mask_identity(secret))
        return text

    @staticmethod
    def _logged(error: GraphError) -> GraphError:
        level = logging.ERROR if error.disposition in ("auth", "permanent") else logging.WARNING
        log.log(level, "graph send failed: %s", error)
        return error


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date; Graph sends seconds, a date is not worth parsing
