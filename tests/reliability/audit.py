"""Count what customers got, from the stub Graph API's log and the database.

For each scenario: every inbound message handled exactly once, every expected reply
accepted by Graph exactly once, each customer's replies in order, nothing stuck.

A reply counts as delivered when the stub answered 2xx, and also when it never answered
(hung or dropped connection): Meta may well have accepted it, so the worst case is
counted. A second delivered copy of one outbox row is a duplicate. It is a *window*
duplicate, the documented limit, when the earlier copy's wamid was never stored: Graph
accepted it (or may have) and the sender died, timed out or lost the database before
recording it. Any other extra copy, or an extra outbox row, is a real duplicate.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.reliability.customers import Customer

ADDRESSING = ("messaging_product", "recipient_type", "to", "recipient")
OPEN = ("pending", "sending")
DONE = ("accepted", "sent", "delivered", "read", "played")


@dataclass
class Tally:
    scenario: str
    messages: int = 0  # distinct inbound messages the customers sent
    replies: int = 0  # replies they were owed
    lost: int = 0
    duplicated: int = 0  # real duplicates: must be 0
    window: int = 0  # duplicates in the documented crash / unknown-outcome window
    out_of_order: int = 0
    stuck: int = 0
    seconds: float = 0.0
    faults: str = ""  # what was injected, for the table
    notes: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        if len(self.notes) < 40:
            self.notes.append(line)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.stuck)


def body_text(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    if content.get("type") == "text":
        return str(content.get("text", {}).get("body", ""))
    inner = content.get("interactive")
    if isinstance(inner, dict):
        return str(inner.get("body", {}).get("text", ""))
    return ""


def content_of(request_body: Any) -> dict[str, Any]:
    """The message content of a Graph request: the body without its addressing."""
    if not isinstance(request_body, dict):
        return {}
    return {k: v for k, v in request_body.items() if k not in ADDRESSING}


def delivered(request: Any) -> bool:
    return request.kind == "message" and (request.status is None or 200 <= request.status < 300)


@dataclass
class _Row:
    id: int
    user_key: str
    inbound_wamid: str | None
    content: dict[str, Any]
    status: str
    wamid: str | None
    last_error: str | None


def audit(tally: Tally, customers: list[Customer], requests: list[Any], db: Engine) -> Tally:
    """Fill ``tally`` for ``customers`` from the stub's ``requests`` and the database."""
    keys = [c.key for c in customers]
    sent = {m.wamid: (c, m) for c in customers for m in c.messages()}
    tally.messages += len(sent)
    tally.replies += sum(len(m.replies) for _, m in sent.values())
    with db.connect() as conn:
        inbound = dict(
            conn.execute(
                text("select wamid, outcome from inbound_messages where wamid = any(:w)"), {"w": list(sent)}
            ).all()
        )
        rows = [
            _Row(*r)
            for r in conn.execute(
                text(
                    "select id, user_key, inbound_wamid, content, status, wamid, last_error from outbound_messages"
                    " where user_key = any(:k) and kind = 'message' order by id"
                ),
                {"k": keys},
            ).all()
        ]
        open_rows = conn.execute(
            text("select count(*) from outbound_messages where user_key = any(:k) and status = any(:s)"),
            {"k": keys, "s": list(OPEN)},
        ).scalar_one()
        live = {
            r[0]
            for r in conn.execute(text("select user_key from conversation_state where user_key = any(:k)"), {"k": keys})
        }
        orders = Counter(
            dict(
                conn.execute(
                    text("select user_key, count(*) from orders where user_key = any(:k) group by user_key"),
                    {"k": keys},
                ).all()
            )
        )
    tally.stuck += open_rows
    if open_rows:
        tally.note(f"{open_rows} outbox rows still open")

    # Inbound: each message handled once (its wamid is unique in the table). One that was
    # not is counted through the replies it owed, which are then missing; a dead-lettered
    # one owes the apology (poison scenarios) or is counted as a wrong reply.
    for wamid, (customer, _) in sent.items():
        if wamid not in inbound:
            tally.note(f"{customer.name}: inbound {wamid[-8:]} never handled")

    by_inbound: dict[str | None, list[_Row]] = {}
    for row in rows:
        by_inbound.setdefault(row.inbound_wamid, []).append(row)
    stored = {row.wamid for row in rows if row.wamid}
    for customer in customers:
        _audit_replies(tally, customer, by_inbound)
        mine = [r for r in rows if r.user_key == customer.key]
        copies = [r for r in requests if r.recipient == customer.recipient and delivered(r)]
        _audit_copies(tally, customer, mine, copies, stored)
        if customer.ends and customer.key in live:
            tally.stuck += 1
            tally.note(f"{customer.name}: conversation left open")
        extra = orders.get(customer.key, 0) - customer.orders
        if extra > 0:
            tally.duplicated += extra
            tally.note(f"{customer.name}: {extra} extra order(s)")
        elif extra < 0:
            tally.lost -= extra
            tally.note(f"{customer.name}: {-extra} order(s) missing")
    return tally


def _audit_replies(tally: Tally, customer: Customer, by_inbound: dict[str | None, list[_Row]]) -> None:
    """Rows written per inbound message: as many as owed, with the owed texts."""
    for msg in customer.messages():
        got = by_inbound.get(msg.wamid, [])
        for pattern, row in zip(msg.replies, got, strict=False):
            if not re.fullmatch(pattern, body_text(row.content), re.S):
                tally.lost += 1
                tally.note(f"{customer.name}: wrong reply {body_text(row.content)[:60]!r}, wanted {pattern[:60]!r}")
            elif row.status == "failed":
                tally.lost += 1
                tally.note(f"{customer.name}: reply failed for good: {(row.last_error or '')[:80]}")
        if len(got) < len(msg.replies):
            tally.lost += len(msg.replies) - len(got)
            tally.note(f"{customer.name}: {len(msg.replies) - len(got)} reply row(s) missing for {msg.text or msg.tap}")
        elif len(got) > len(msg.replies):
            tally.duplicated += len(got) - len(msg.replies)
            tally.note(f"{customer.name}: {len(got) - len(msg.replies)} extra reply row(s) for {msg.text or msg.tap}")


def _audit_copies(tally: Tally, customer: Customer, rows: list[_Row], copies: list[Any], stored: set[str]) -> None:
    """Graph requests per outbox row: one delivered copy each, in row order."""
    copies = sorted(copies, key=lambda r: r.seq)
    taken: set[int] = set()
    first_seen: list[int] = []
    for row in rows:
        if row.status not in DONE:
            continue  # open (stuck) or failed: counted above
        final = next((c for c in copies if row.wamid and c.wamid == row.wamid), None)
        if final is None:
            tally.lost += 1
            tally.note(f"{customer.name}: row {row.id} accepted but the stub never issued {row.wamid}")
            continue
        earlier = [
            c
            for c in copies
            if c.seq < final.seq and c.seq not in taken and c.wamid not in stored and content_of(c.body) == row.content
        ]
        for c in [*earlier, final]:
            taken.add(c.seq)
        if earlier:
            tally.window += len(earlier)
            tally.note(f"{customer.name}: row {row.id} delivered {len(earlier) + 1} times (window)")
        first_seen.append((earlier[0] if earlier else final).seq)
    for stray in (c for c in copies if c.seq not in taken):
        tally.duplicated += 1
        tally.note(f"{customer.name}: unexplained send {body_text(content_of(stray.body))[:50]!r}")
    descents = sum(1 for a, b in pairwise(first_seen) if b < a)
    if descents:
        tally.out_of_order += descents
        tally.note(f"{customer.name}: {descents} reply/replies out of order")


COLUMNS = (
    "scenario",
    "faults",
    "messages",
    "replies",
    "lost",
    "duplicated",
    "window dups",
    "out of order",
    "stuck",
    "s",
)


def table(tallies: list[Tally]) -> str:
    """A Markdown table, one line per scenario."""
    lines = [
        [
            t.scenario,
            t.faults,
            str(t.messages),
            str(t.replies),
            str(t.lost),
            str(t.duplicated),
            str(t.window),
            str(t.out_of_order),
            str(t.stuck),
            f"{t.seconds:.0f}",
        ]
        for t in tallies
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(COLUMNS)]

    def fmt(cells: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([fmt(COLUMNS), "| " + " | ".join("-" * w for w in widths) + " |", *map(fmt, lines)])
