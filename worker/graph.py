"""Graph API client for sending messages, with Meta's error codes sorted by what to do next.

One ``requests.Session`` per process (connection reuse; safe across threads for this use),
no automatic retries underneath: the sender decides, per error code, whether and when.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from settings import Settings

log = logging.getLogger(__name__)

# cloud-api-facts.md section 7.
RETRY_CODES = {130429, 131000, 1, 2, 4, 80007, 131016, 133004, 131057}
PAIR_LIMIT_CODES = {131056}
AUTH_CODES = {190, 0}
PERMANENT_CODES = {
    131047, 131026, 131051, 100, 131008, 131009, 130403, 131021, 131048, 131049, 131050,
    368, 131031, 130497, 131042, 131045, 133010, 3, 10, 131005,
}  # fmt: skip
MAX_DELAY = 300.0


def mask(recipient: str | None) -> str:
    if not recipient:
        return "-"
    return ("***" + recipient[-4:]) if len(recipient) > 4 else "***"


class GraphError(Exception):
    """A send that did not succeed; ``disposition`` says what the sender should do."""

    def __init__(
        self,
        disposition: str,
        code: int | None = None,
        http_status: int | None = None,
        title: str = "",
        details: str = "",
    ) -> None:
        self.disposition = disposition  # retry | pair_limit | auth | permanent | unknown_outcome
        self.code = code
        self.http_status = http_status
        self.title = title
        self.details = details
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [self.disposition]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.title:
            parts.append(self.title[:200])
        return ": ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else "")


def classify(code: int | None, http_status: int | None) -> str:
    if code is not None:
        if code in PAIR_LIMIT_CODES:
            return "pair_limit"
        if code in AUTH_CODES:
            return "auth"
        if code in RETRY_CODES:
            return "retry"
        if code in PERMANENT_CODES or 132000 <= code <= 132016 or 200 <= code <= 299:
            return "permanent"
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return "retry"
    return "permanent"


def retry_delay(disposition: str, attempt: int) -> float:
    """Seconds before the next try. Full-jitter exponential backoff (base 1 s, cap 300 s);
    the pair rate limit waits 4**n seconds as Meta advises (facts section 8)."""
    attempt = max(attempt, 0)
    if disposition == "pair_limit":
        return float(min(4**attempt, MAX_DELAY))
    return random.uniform(0.5, min(MAX_DELAY, 2.0**attempt))


def build_body(to_phone: str | None, to_user_id: str | None, content: dict[str, Any]) -> dict[str, Any]:
    """The messages-endpoint body: ``to`` when the phone is known, else ``recipient`` (BSUID)."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if to_phone:
        body["to"] = "+" + to_phone.lstrip("+")
    elif to_user_id:
        body["recipient"] = to_user_id
    else:
        raise GraphError("permanent", title="no recipient: neither phone nor BSUID")
    body.update(content)
    return body


@dataclass(frozen=True)
class SendResult:
    wamid: str
    response: dict[str, Any]


class GraphClient:
    def __init__(self, api_url: str, access_token: str, connect_timeout: float, read_timeout: float) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = access_token
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphClient:
        return cls(settings.api_url, settings.access_token, settings.graph_connect_timeout, settings.graph_read_timeout)

    def send(
        self, phone_number_id: str, to_phone: str | None, to_user_id: str | None, content: dict[str, Any]
    ) -> SendResult:
        data = self._post(phone_number_id, build_body(to_phone, to_user_id, content))
        try:
            wamid = data["messages"][0]["id"]
            assert isinstance(wamid, str) and wamid
        except (KeyError, IndexError, TypeError, AssertionError):
            raise GraphError("retry", http_status=200, title="success answer without messages[0].id") from None
        return SendResult(wamid, data)

    def mark_read(self, phone_number_id: str, message_id: str) -> None:
        self._post(phone_number_id, {"messaging_product": "whatsapp", "status": "read", "message_id": message_id})

    def _post(self, phone_number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.api_url}/{phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        try:
            response = self.http.post(url, json=body, headers=headers, timeout=self.timeout)
        except requests.ConnectTimeout:
            raise GraphError("retry", title="connect timeout") from None
        except requests.ReadTimeout:
            # The request went out; Meta may have accepted it. The caller decides.
            raise GraphError("unknown_outcome", title="no answer within the read timeout") from None
        except requests.ConnectionError as exc:
            sent = "Connection aborted" in str(exc) or "RemoteDisconnected" in str(exc)
            raise GraphError("unknown_outcome" if sent else "retry", title=exc.__class__.__name__) from None
        except requests.RequestException as exc:
            raise GraphError("retry", title=exc.__class__.__name__) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.ok and isinstance(data, dict):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        title = str(error.get("message", ""))[:200] if isinstance(error, dict) else ""
        details = ""
        if isinstance(error, dict) and isinstance(error.get("error_data"), dict):
            details = str(error["error_data"].get("details", ""))[:300]
        exc = GraphError(classify(code, response.status_code), code, response.status_code, title, details)
        log.warning("graph send refused: %s", exc, extra={"to": mask(body.get("to") or body.get("recipient"))})
        raise exc
