"""Drop-off and submissions: customers walk the shipped flows through the real inbound path.

The event log is written by ``process_event`` (engine effects), by the expiry cleanup and
by an operator ending a conversation; the funnel is then read back with ``stats.dropoff``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import stats
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.db import make_engine
from conversation.events import UserRef
from conversation.models import ConversationEvent, ConversationState, Submission
from conversation.service import ConversationService
from conversation.state import EndReason, EngineConfig
from conversation.turn import process_event
from templates.loader import load_directory
from tests.conversation.transcript import Customer
from tests.support.database import migrate

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
def flows(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """The shipped flows loaded; Postgres for production, SQLite for the embedded default."""
    if request.param == "postgres":
        session = request.getfixturevalue("db_session")
        engine = None
    else:
        url = f"sqlite:///{tmp_path / 'parley.sqlite3'}"
        migrate(url)
        engine = make_engine(url)
        session = Session(engine, expire_on_commit=False)
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    ConversationService(session).upsert_templates(shipped.templates.values())
    session.commit()
    yield session
    if engine is not None:
        session.close()
        engine.dispose()


def customer(phone: str) -> Customer:
    return Customer(UserRef(user_id=None, phone=phone, profile_name="Ann"), start=T0)


def turns(session: Session, who: Customer, *steps: dict[str, Any]) -> None:
    for turn in steps:
        event = who.event(turn)
        process_event(session, event, EngineConfig(), mark_as_read=False, now=event.timestamp)
        session.commit()


def events(session: Session, user: str) -> list[tuple[str, str, str]]:
    rows = session.scalars(select(ConversationEvent).where(ConversationEvent.user_key == user).order_by("id"))
    return [(r.template_name, r.step, r.event) for r in rows]


def test_events_follow_the_customer_through_the_flow(flows: Session) -> None:
    ann = customer("15550000001")
    turns(flows, ann, {"send": "order"}, {"tap": "coffee"}, {"send": "2"}, {"tap": "change"}, {"send": "3"})
    turns(flows, ann, {"tap": "confirm"})
    assert events(flows, "15550000001") == [
        ("new_order", "initial", "entered"),
        ("new_order", "quantity", "entered"),
        ("new_order", "confirmation", "entered"),
        ("new_order", "quantity", "entered"),  # sent back: a second visit, same run
        ("new_order", "confirmation", "entered"),
        ("new_order", "complete", "entered"),
        ("new_order", "complete", "completed"),
    ]


def test_funnel_counts_runs_per_step_and_where_they_ended(flows: Session) -> None:
    ann, bob, cid, dan = (customer(f"1555000000{i}") for i in range(1, 5))
    # Ann completes, with a detour back to quantity; later she starts again twice.
    turns(flows, ann, {"send": "order"}, {"tap": "coffee"}, {"send": "2"}, {"tap": "change"}, {"send": "3"})
    turns(flows, ann, {"tap": "confirm"}, {"send": "order"}, {"tap": "tea"}, {"send": "order"})
    # Bob cancels at confirmation; Dan taps "cancel", which switches him to main_menu.
    turns(flows, bob, {"send": "order"}, {"tap": "tea"}, {"send": "1"}, {"send": "cancel"})
    turns(flows, dan, {"send": "order"}, {"tap": "juice"}, {"send": "1"}, {"tap": "cancel"})
    # Cid leaves at quantity; the cleanup expires him a day later.
    turns(flows, cid, {"send": "order"}, {"tap": "salad"})
    removed = ConversationService(flows).cleanup_expired_conversations(now=T0 + timedelta(days=2))
    flows.commit()
    assert removed == 3  # cid, ann's third run, dan in main_menu

    funnel = stats.dropoff(flows, "new_order")
    by_step = {s.step: s for s in funnel.steps}
    assert [s.step for s in funnel.steps] == ["initial", "quantity", "confirmation", "complete"]
    assert funnel.started == 6  # ann x3, bob, cid, dan
    assert [by_step[s].reached for s in ("initial", "quantity", "confirmation", "complete")] == [6, 5, 3, 1]
    assert (funnel.completed, by_step["complete"].completed) == (1, 1)
    assert (by_step["confirmation"].cancelled, by_step["confirmation"].switched) == (1, 1)
    assert (by_step["quantity"].restarted, by_step["quantity"].expired, by_step["initial"].expired) == (1, 1, 1)
    assert funnel.expired == 2 and funnel.cancelled == 1

    menu = stats.dropoff(flows, "main_menu")
    assert (menu.started, menu.expired, menu.steps[0].step) == (1, 1, "initial")
    assert stats.dropoff(flows, "no_such_flow").steps == []


def test_expiry_seen_by_the_engine_is_recorded_once(flows: Session) -> None:
    eve = customer("15550000005")
    turns(flows, eve, {"send": "order"}, {"tap": "coffee"})
    eve.clock += timedelta(days=2)
    turns(flows, eve, {"send": "hello"})
    assert ConversationService(flows).cleanup_expired_conversations(now=eve.clock) == 0
    assert events(flows, "15550000005")[-3:] == [
        ("new_order", "quantity", "entered"),
        ("new_order", "quantity", "expired"),
        ("main_menu", "initial", "entered"),
    ]


def test_cleanup_logs_each_deleted_row_and_operator_end_counts_as_cancelled(flows: Session) -> None:
    service = ConversationService(flows)
    for i in range(3):
        service.start_conversation(UserRef(None, f"1555000010{i}"), "support", now=T0)
    assert service.end_conversation("15550000100", now=T0 + timedelta(minutes=1)) is True
    assert service.end_conversation("15550000100") is False
    assert service.cleanup_expired_conversations(now=T0 + timedelta(days=3), batch_size=1) == 2
    assert flows.scalar(select(ConversationState).where(ConversationState.user_key.like("155500001%"))) is None
    logged = flows.scalars(select(ConversationEvent).where(ConversationEvent.event != "entered")).all()
    assert sorted((e.user_key, e.step, e.event) for e in logged) == [
        ("15550000100", "initial", "cancelled"),
        ("15550000101", "initial", "expired"),
        ("15550000102", "initial", "expired"),
    ]


def test_restarting_a_customer_from_the_service_ends_the_old_run(flows: Session) -> None:
    service = ConversationService(flows)
    user = UserRef(None, "15550000200")
    service.start_conversation(user, "support", now=T0)
    service.start_conversation(user, "account", now=T0)
    assert events(flows, "15550000200") == [
        ("support", "initial", "entered"),
        ("support", "initial", "restarted"),
        ("account", "initial", "entered"),
    ]


def add_submission(
    session: Session, template: str, user: str, answers: dict[str, Any], at: datetime, language: str | None = None
) -> None:
    session.add(Submission(template_name=template, user_key=user, answers=answers, created_at=at, language=language))
    session.flush()


def test_submissions_filter_and_export_as_csv(flows: Session) -> None:
    add_submission(flows, "new_order", "15550009999", {"product": "tea", "quantity": 2}, T0, language="pt_BR")
    add_submission(flows, "support", "US.13491208655302741918", {"topic": "=HYPERLINK(1)"}, T0 + timedelta(days=1))
    add_submission(
        flows, "new_order", "15550008888", {"product": "pasta", "note": "-", "extra": [1]}, T0 + timedelta(days=3)
    )

    assert [s.template_name for s in stats.submissions(flows)] == ["new_order", "support", "new_order"]
    assert len(stats.submissions(flows, template="new_order")) == 2
    until = stats.parse_bound("2026-11-03", end=True)  # the whole of the 3rd
    assert [s.user_key for s in stats.submissions(flows, since=stats.parse_bound("2026-11-03"), until=until)] == [
        "US.13491208655302741918"
    ]
    assert stats.parse_bound("2026-11-03T10:00:00") == datetime(2026, 11, 3, 10, tzinfo=UTC)

    out = io.StringIO()
    assert stats.write_csv(stats.submissions(flows), out) == 3
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    header = ["submitted_at", "template", "user", "language", "product", "quantity", "topic", "note", "extra"]
    assert rows[0] == header
    assert rows[1] == ["2026-11-02T09:00:00+00:00", "new_order", "***9999", "pt_BR", "tea", "2", "", "", ""]
    assert rows[2][2:] == ["US.***1918", "", "", "", "'=HYPERLINK(1)", "", ""]  # a formula is defused
    assert rows[3][2:] == ["***8888", "", "pasta", "", "", "'-", "[1]"]
    full = io.StringIO()
    stats.write_csv(stats.submissions(flows, template="support"), full, reveal_users=True)
    assert "US.13491208655302741918" in full.getvalue()


def test_funnel_table_is_readable(flows: Session) -> None:
    turns(flows, customer("15550000300"), {"send": "order"}, {"tap": "coffee"}, {"send": "cancel"})
    table = stats.funnel_table(stats.dropoff(flows, "new_order")).splitlines()
    assert table[0] == "new_order: 1 conversation(s) started, 0 completed"
    assert table[1].split() == ["step", "reached", "%", *EndReason]
    assert table[3].split() == ["quantity", "1", "100", "0", "1", "0", "0", "0", "0", "0"]
    assert table[-1].split() == ["total", "1", "0", "1", "0", "0", "0", "0", "0"]


def test_a_handoff_is_an_ending_of_its_own_at_the_handoff_step(flows: Session) -> None:
    turns(flows, customer("15550000301"), {"send": "support"}, {"tap": "contact"}, {"send": "anyone there?"})
    funnel = stats.dropoff(flows, "support")
    assert (funnel.started, funnel.handed_off, funnel.completed, funnel.expired) == (1, 1, 0, 0)
    by_step = {s.step: s for s in funnel.steps}
    assert (by_step["contact_person"].reached, by_step["contact_person"].handed_off) == (1, 1)
    assert by_step["initial"].handed_off == 0


def test_the_funnel_is_per_flow_whatever_the_language(flows: Session) -> None:
    turns(flows, customer("15550000400"), {"send": "order"}, {"tap": "coffee"}, {"send": "cancel"})
    turns(flows, customer("15550000401"), {"send": "pedido"}, {"tap": "coffee"}, {"send": "cancel"})
    quantity = next(s for s in stats.dropoff(flows, "new_order").steps if s.step == "quantity")
    assert (quantity.reached, quantity.cancelled) == (2, 2)  # the English and the Portuguese customer
