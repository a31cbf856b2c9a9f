"""Answers and drop-off: read-only views over ``submissions`` and ``conversation_events``.

A *run* is one pass of a customer through one template, from entering its ``initial``
step to the event that ends it (completed, cancelled, expired, switched, restarted,
template_gone, or handed_off: a person took over). A step's "reached" counts runs, not
visits: a customer sent back from confirmation to quantity has reached quantity once.
"""

from __future__ import annotations

import csv
import json
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TextIO

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from conversation.logs import mask_identity
from conversation.models import ConversationEvent, Submission
from conversation.service import ConversationService, to_definition
from conversation.state import EndReason
from templates.lint import transitions

EVENTS = ("entered", *EndReason)
# Spreadsheets run a cell starting with these as a formula; customers type the answers.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LEAP_SECOND = re.compile(r"(T\d\d:\d\d:)60")


@dataclass
class StepCount:
    step: str
    reached: int = 0
    completed: int = 0
    cancelled: int = 0
    expired: int = 0
    switched: int = 0
    restarted: int = 0
    template_gone: int = 0
    handed_off: int = 0


@dataclass
class Funnel:
    """Per-step drop-off of one template; ``steps`` in flow order (BFS from initial)."""

    template: str
    started: int = 0  # runs that reached "initial"
    completed: int = 0
    cancelled: int = 0
    expired: int = 0
    switched: int = 0
    restarted: int = 0
    template_gone: int = 0
    handed_off: int = 0
    steps: list[StepCount] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_bound(text: str, end: bool = False) -> datetime:
    """An ISO date or datetime as an aware UTC datetime.

    A bare date as an ``end`` bound means the end of that day, so ``--until 2026-11-30``
    includes the 30th. Naive datetimes are taken as UTC. Raises ValueError.
    """
    text = text.strip().upper()  # RFC 3339 allows "t" and "z"
    try:
        if len(text) == 10:
            start = datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        # Python has no leap second; 23:59:60 bounds the same queries as 23:59:59.
        value = datetime.fromisoformat(_LEAP_SECOND.sub(r"\g<1>59", text).replace("Z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # past year 1 or 9999 once in UTC: clamp, no row is out there anyway
        return (datetime.max if text[:4] > "5000" else datetime.min).replace(tzinfo=UTC)


def _between(stmt: Select[Any], column: Any, since: datetime | None, until: datetime | None) -> Select[Any]:
    if since is not None:
        stmt = stmt.where(column >= since)
    if until is not None:
        stmt = stmt.where(column < until)
    return stmt


def flow_order(session: Session, template_name: str) -> list[str]:
    """The template's steps breadth-first from initial, then any it cannot reach; [] if unknown."""
    row = ConversationService(session).get_template(template_name)
    if row is None:
        return []
    try:
        definition = to_definition(row)
    except ValueError:  # edited by hand into something invalid; fall back to event order
        return []
    order: list[str] = []
    queue = deque(["initial"])
    while queue:
        name = queue.popleft()
        if name in order or name not in definition.steps:
            continue
        order.append(name)
        queue.extend(target for _, target in transitions(definition, name))
    return order + [s for s in definition.steps if s not in order]


def dropoff(
    session: Session, template_name: str, since: datetime | None = None, until: datetime | None = None
) -> Funnel:
    """How many runs reached each step of ``template_name`` and how they ended, and where."""
    ev = ConversationEvent
    ended = case((ev.event.in_(list(EndReason)), 1), else_=0)
    # Runs per customer: an "entered" belongs to the run after the endings before it.
    numbered = _between(
        select(
            ev.user_key,
            ev.step,
            ev.event,
            func.sum(ended).over(partition_by=ev.user_key, order_by=ev.id).label("run"),
        ).where(ev.template_name == template_name),
        ev.created_at,
        since,
        until,
    ).subquery()
    visits = (
        select(numbered.c.step, numbered.c.user_key, numbered.c.run)
        .where(numbered.c.event == "entered")
        .distinct()
        .subquery()
    )
    reached = dict(session.execute(select(visits.c.step, func.count()).group_by(visits.c.step)).tuples().all())
    endings = session.execute(
        _between(
            select(ev.step, ev.event, func.count())
            .where(ev.template_name == template_name, ev.event.in_(list(EndReason)))
            .group_by(ev.step, ev.event),
            ev.created_at,
            since,
            until,
        )
    ).all()

    counts: dict[str, StepCount] = {}
    for name in flow_order(session, template_name):
        counts[name] = StepCount(name)
    for name, n in sorted(reached.items(), key=lambda kv: (-kv[1], kv[0])):
        counts.setdefault(name, StepCount(name)).reached = n
    funnel = Funnel(template_name, started=reached.get("initial", 0))
    for name, event, n in endings:
        step = counts.setdefault(name, StepCount(name))
        setattr(step, event, getattr(step, event) + n)
        setattr(funnel, event, getattr(funnel, event) + n)
    funnel.steps = list(counts.values())
    return funnel


def submissions(
    session: Session,
    template: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Submission]:
    """Answers of completed flows, oldest first (``until`` exclusive)."""
    stmt = select(Submission).order_by(Submission.created_at, Submission.id)
    if template is not None:
        stmt = stmt.where(Submission.template_name == template)
    stmt = _between(stmt, Submission.created_at, since, until).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def answer_keys(rows: Iterable[Submission]) -> list[str]:
    """Every answer key over ``rows``, in order of first appearance."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row.answers or {}))
    return list(keys)


def write_csv(rows: Sequence[Submission], out: TextIO, reveal_users: bool = False) -> int:
    """CSV of ``rows``: submitted_at, template, user, language, then one column per answer key."""
    keys = answer_keys(rows)
    writer = csv.writer(out)
    writer.writerow(["submitted_at", "template", "user", "language", *keys])
    for row in rows:
        user = row.user_key if reveal_users else mask_identity(row.user_key)
        answers = row.answers or {}
        writer.writerow(
            [
                row.created_at.astimezone(UTC).isoformat(),
                row.template_name,
                user,
                row.language or "",
                *(_cell(answers.get(k)) for k in keys),
            ]
        )
    return len(rows)


def funnel_table(funnel: Funnel) -> str:
    """``funnel`` as a fixed-width text table (``flask --app webhook stats``)."""
    head = ("step", "reached", "%", *EndReason)
    lines = [head]
    for s in funnel.steps:
        share = f"{100 * s.reached / funnel.started:.0f}" if funnel.started else "-"
        lines.append((s.step, str(s.reached), share, *(str(getattr(s, e)) for e in EndReason)))
    lines.append(("total", str(funnel.started), "", *(str(getattr(funnel, e)) for e in EndReason)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [f"{funnel.template}: {funnel.started} conversation(s) started, {funnel.completed} completed"]
    for line in lines:
        cells = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)
