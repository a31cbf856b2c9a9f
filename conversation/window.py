"""The 24-hour customer service window, per customer and business number.

Each message a customer sends opens (or refreshes) a 24-hour window on the number it was
sent to; while it is open any message may go to them, once it has closed only a message
template (Meta refuses anything else with 131047). The window starts when the customer
sent the message, Meta's timestamp, not when parley processed it: a webhook Meta
redelivers hours later must not stretch it. A timestamp from the future (a skewed clock)
counts as now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from conversation.models import CustomerWindow

WINDOW = timedelta(hours=24)
# Meta's error code for a free-form message outside the window.
WINDOW_CLOSED_CODE = 131047


def opened_at(sent_at: datetime | None, received_at: datetime) -> datetime:
    """When a message opened the window: when it was sent, never later than its receipt."""
    return received_at if sent_at is None or sent_at > received_at else sent_at


def closes_at(last_inbound_at: datetime) -> datetime:
    return last_inbound_at + WINDOW


def is_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """True while ``now`` is within 24 hours of the customer's last message (never wrote: closed)."""
    return last_inbound_at is not None and now < closes_at(last_inbound_at)


def refusal(content: dict[str, object], last_inbound_at: datetime | None, now: datetime) -> str | None:
    """Why ``content`` may not be sent now (Meta would refuse it with 131047), or None.

    Only a message template may go once the window has closed, whatever asked for the
    message: a reply that waited out a long outage, a reminder, a person's message.
    """
    if content.get("type") == "template" or is_open(last_inbound_at, now):
        return None
    if last_inbound_at is None:
        return "the 24-hour customer service window is closed: the customer never wrote to this number"
    return f"the 24-hour customer service window closed at {closes_at(last_inbound_at).isoformat()}"


@dataclass(frozen=True)
class Window:
    phone_number_id: str
    last_inbound_at: datetime

    def closes_at(self) -> datetime:
        return closes_at(self.last_inbound_at)

    def is_open(self, now: datetime) -> bool:
        return is_open(self.last_inbound_at, now)

    def as_dict(self, now: datetime) -> dict[str, object]:
        return {
            "phone_number_id": self.phone_number_id,
            "last_inbound_at": self.last_inbound_at.isoformat(),
            "closes_at": self.closes_at().isoformat(),
            "open": self.is_open(now),
        }


# Text for the same reason as the inbound path's upserts (a dialect insert with ON CONFLICT
# is compiled again on every call). Only a later message moves the window: a redelivered
# or late webhook carrying an older timestamp leaves it as it is.
_RECORD = text(
    "INSERT INTO customer_windows (user_key, phone_number_id, last_inbound_at) VALUES (:k, :n, :at)"
    " ON CONFLICT (user_key, phone_number_id) DO UPDATE SET last_inbound_at = excluded.last_inbound_at"
    " WHERE customer_windows.last_inbound_at < excluded.last_inbound_at"
).bindparams(bindparam("at", type_=CustomerWindow.last_inbound_at.type))


def record_inbound(session: Session, user_key: str, phone_number_id: str, at: datetime) -> None:
    """The customer wrote to ``phone_number_id`` at ``at`` (see :func:`opened_at`)."""
    session.connection().execute(_RECORD, {"k": user_key, "n": phone_number_id, "at": at})


def windows(session: Session, user_key: str) -> list[Window]:
    """Every business number the customer wrote to, the most recent first."""
    rows = session.execute(
        select(CustomerWindow.phone_number_id, CustomerWindow.last_inbound_at)
        .where(CustomerWindow.user_key == user_key)
        .order_by(CustomerWindow.last_inbound_at.desc(), CustomerWindow.phone_number_id)
    ).all()
    return [Window(row.phone_number_id, row.last_inbound_at) for row in rows]


def last_inbound(session: Session, user_key: str, phone_number_id: str) -> datetime | None:
    return session.scalar(
        select(CustomerWindow.last_inbound_at).where(
            CustomerWindow.user_key == user_key, CustomerWindow.phone_number_id == phone_number_id
        )
    )
